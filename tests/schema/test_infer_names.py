"""Column names (SPEC §9.2), the default engine from sampled cardinality (§9.4) and sampling (§9.1)."""

from __future__ import annotations

import json

import pytest

from birdhouse.schema.columns import parse_schema
from birdhouse.schema.engine import EngineSpec, engine_full
from birdhouse.schema.infer import Inference, column_name, infer_schema, sample_body, unique_names
from birdhouse.schema.names import COLUMN_NAME_RE


def infer(*rows: object) -> Inference:
    return infer_schema(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("$.store_id", "store_id"),
        ("$.purchase.product_name", "purchase_product_name"),
        ("$.a-b", "a_b"),
        ("$.['product.code']", "product_code"),
        ("$.product.['code.id']", "product_code_id"),
        ("$.tags[:]", "tags"),  # `[:]` → `_`, then one trailing `_` removed
        ("$.a_nested_array.nested_array[:]", "a_nested_array_nested_array"),  # Tinybird's docs example
        ("$.items[:].id", "items__id"),
        ("$.$ref", "DOLLAR_SIGN_ref"),
        ("$.$", "DOLLAR_SIGN"),
        ("$.a__", "a_"),  # only one trailing `_` goes
        ("$.['@timestamp']", "_timestamp"),
        ("$.['a b!']", "a_b_"),  # other characters become `_` after the trailing `_` rule
        ("$.['café']", "caf_"),
        ("$.1x", "_1x"),
        ("$.['2024']", "_2024"),
        ("$.['']", "_"),
        ("$.index", "_index"),  # reserved (SPEC §4.6)
        ("$.INDEX", "_INDEX"),
        ("$." + "k" * 300, "k" * 255),
    ],
)
def test_column_name(path: str, name: str) -> None:
    assert column_name(path) == name
    assert COLUMN_NAME_RE.fullmatch(name)


def test_unique_names_suffixes_later_duplicates() -> None:
    assert unique_names(["a", "a", "b", "a"]) == ["a", "a_2", "b", "a_3"]
    # A natural `a_2` keeps its name; the duplicate skips to `a_3`.
    assert unique_names(["a", "a", "a_2"]) == ["a", "a_3", "a_2"]
    long = "k" * 255
    assert unique_names([long, long]) == [long, "k" * 253 + "_2"]


def test_name_collisions_in_a_sample() -> None:
    inference = infer({"a-b": 1, "a.b": 2, "a_b": 3, "a": {"b": 4}})
    # All present once, so path order decides who keeps the plain name.
    assert [(c.jsonpath, c.name) for c in inference.columns] == [
        ("$.['a-b']", "a_b"),
        ("$.['a.b']", "a_b_2"),
        ("$.a.b", "a_b_3"),
        ("$.a_b", "a_b_4"),
    ]
    assert parse_schema(inference.schema) == inference.columns


def test_keys_needing_brackets_round_trip_through_the_schema() -> None:
    keys = ["it's", "back\\slash", "sp ace", "new\nline", "[:]", "-", "ünï", "a,b", "--c"]
    inference = infer({k: 1 for k in keys})
    parsed = parse_schema(inference.schema)
    assert parsed == inference.columns
    assert len(parsed) == len(keys)


def test_engine_orders_by_date_then_lowest_cardinality() -> None:
    rows = [
        {"ts": f"2024-01-0{i % 9 + 1} 10:00:00", "user": f"u{i}", "country": "ES" if i % 2 else "FR", "n": i % 5}
        for i in range(20)
    ]
    inference = infer(*rows)
    assert inference.cardinality == {"ts": 9, "user": 20, "country": 2, "n": 5}
    assert inference.engine == EngineSpec(sorting_key="ts, country, n, user", partition_key="toYear(ts)")


def test_engine_ties_keep_column_order_and_skip_nullable_and_arrays() -> None:
    inference = infer({"b": "x", "a": "y", "z": 1, "tags": ["t"], "maybe": 1}, {"b": "x", "a": "y", "z": 1, "tags": []})
    assert inference.engine == EngineSpec(sorting_key="a, b, z")


def test_engine_uses_floats_only_when_nothing_else() -> None:
    assert infer({"f": 1.5, "g": 2.5}, {"f": 1.5, "g": 3.5}).engine == EngineSpec(sorting_key="f, g")
    assert infer({"f": 1.5, "s": "x"}).engine == EngineSpec(sorting_key="s")


def test_engine_without_eligible_columns_orders_by_tuple() -> None:
    inference = infer({"tags": ["a"], "n": None}, {"tags": ["b"], "n": 1})
    assert inference.engine == EngineSpec()
    assert engine_full(inference.engine, inference.columns) == "MergeTree ORDER BY tuple()"


def test_engine_partitions_by_the_first_non_nullable_date() -> None:
    inference = infer({"a": "2024-01-01", "b": "2024-01-01 10:00:00.5"}, {"b": "2024-01-02 10:00:00.5"})
    assert inference.engine == EngineSpec(sorting_key="b", partition_key="toYear(b)")
    assert engine_full(inference.engine, inference.columns) == "MergeTree PARTITION BY toYear(b) ORDER BY b"


class Recorder:
    """An ``infer`` that records the sample sizes it was given."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, sample: bytes) -> Inference:
        self.sizes.append(len(sample))
        return infer_schema(sample)


def test_sample_body_uses_the_first_bytes_cut_at_a_newline() -> None:
    body = b"".join(b'{"n": %d}\n' % i for i in range(10))  # 9 bytes a line
    recorder = Recorder()
    inference = sample_body(body, 35, 1000, recorder)
    assert inference is not None
    assert recorder.sizes == [27]  # three whole lines, the partial fourth left out
    assert inference.rows == 3


def test_sample_body_doubles_until_a_column_is_inferred() -> None:
    body = b"garbage\n" * 10 + b'{"n": 1}\n' + b'{"n": 2}\n' * 50
    recorder = Recorder()
    inference = sample_body(body, 16, 4096, recorder)
    assert inference is not None
    assert [c.name for c in inference.columns] == ["n"]
    assert recorder.sizes == [16, 32, 64, 125]  # 128 bytes cut after the fifth 9-byte object line
    assert inference.rows == 5


def test_sample_body_skips_samples_that_did_not_grow() -> None:
    body = b'{"long": "' + b"x" * 100 + b'"}\n'
    recorder = Recorder()
    assert sample_body(body, 8, 64, recorder) is None
    assert recorder.sizes == [0]  # 8, 16, 32 and 64 bytes all cut to nothing: inferred once


def test_sample_body_gives_up_at_the_maximum() -> None:
    body = b"not json\n" * 1000
    recorder = Recorder()
    assert sample_body(body, 100, 700, recorder) is None
    assert recorder.sizes == [99, 198, 396, 693]
    assert sample_body(b"", 100, 700) is None


def test_sample_body_takes_a_short_body_whole() -> None:
    inference = sample_body(b'{"a": 1}\n{"a": 2}', 65536, 10 << 20)  # no final newline
    assert inference is not None
    assert inference.rows == 2
