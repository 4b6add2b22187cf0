"""SPEC §9.2 inference rules, one focused example each."""

from __future__ import annotations

import json

import pytest

from birdhouse.schema.columns import parse_schema
from birdhouse.schema.infer import DroppedPath, Inference, infer_schema
from birdhouse.schema.infer_stats import MAX_DEPTH


def infer(*rows: object, max_columns: int = 10_000) -> Inference:
    return infer_schema(b"".join(json.dumps(r).encode() + b"\n" for r in rows), max_columns=max_columns)


def types(inference: Inference) -> dict[str, str]:
    """json path → column type."""
    return {str(c.jsonpath): c.type for c in inference.columns}


def reasons(inference: Inference) -> dict[str, str]:
    return {d.path: d.reason for d in inference.dropped}


def test_spec_example_verbatim() -> None:
    sample = b'{"store_id":1,"purchase":{"product_name":"shoes","datetime":"2022-01-05 12:13:14"}}'
    inference = infer_schema(sample)
    assert inference.schema == (
        "purchase_datetime DateTime `json:$.purchase.datetime`, "
        "purchase_product_name String `json:$.purchase.product_name`, "
        "store_id Int16 `json:$.store_id`"
    )
    assert parse_schema(inference.schema) == inference.columns
    assert inference.dropped == []
    assert inference.rows == 1


def test_objects_give_no_column_only_their_leaves() -> None:
    inference = infer({"a": {"b": {"c": 1}, "d": {}}})
    assert types(inference) == {"$.a.b.c": "Int16"}
    assert inference.dropped == []  # an object is structure, not a dropped column


def test_null_only_paths_give_no_column() -> None:
    inference = infer({"a": None, "b": 1}, {"a": None, "b": 2})
    assert types(inference) == {"$.b": "Int16"}
    assert reasons(inference) == {"$.a": "only null values"}


@pytest.mark.parametrize(
    ("values", "kinds"),
    [
        (["x", 1], "number, string"),
        ([True, 1], "boolean, number"),
        ([{"k": 1}, 2], "number, object"),
        ([[1], "x"], "array, string"),
    ],
)
def test_paths_with_more_than_one_json_type_are_dropped(values: list[object], kinds: str) -> None:
    inference = infer(*({"a": v, "ok": 1} for v in values))
    assert "$.a" not in types(inference)
    assert reasons(inference)["$.a"] == f"more than one JSON type: {kinds}"
    assert types(inference)["$.ok"] == "Int16"


def test_leaves_under_a_sometimes_object_survive_as_nullable() -> None:
    # Where `a` is not an object the converter finds `$.a.k` absent, which Nullable absorbs.
    inference = infer({"a": {"k": 1}}, {"a": 2})
    assert types(inference) == {"$.a.k": "Nullable(Int16)"}


def test_arrays_of_arrays_are_dropped() -> None:
    inference = infer({"m": [[1, 2], [3]], "o": [{"n": [1]}], "ok": [1]})
    assert types(inference) == {"$.ok[:]": "Array(Int16)"}
    assert reasons(inference) == {
        "$.m[:][:]": "arrays of arrays are not supported",
        "$.o[:].n[:]": "arrays of arrays are not supported",
    }


def test_leaves_under_a_sometimes_array_are_dropped() -> None:
    inference = infer({"a": [{"b": 1}]}, {"a": "text"})
    assert types(inference) == {}
    assert reasons(inference) == {
        "$.a": "more than one JSON type: array, string",
        "$.a[:].b": "$.a is not always an array",
    }


def test_max_columns_keeps_the_first_in_column_order() -> None:
    inference = infer({"c": 1, "a": 1, "b": 1, "z": None}, {"a": 1, "b": 1}, max_columns=2)
    assert [c.name for c in inference.columns] == ["a", "b"]
    assert reasons(inference) == {"$.c": "more than 2 columns", "$.z": "only null values"}
    assert infer({"a": 1}, max_columns=0).columns == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2022-10-27T11:43:02.099Z", "2022-10-27T11:43:03Z"], "DateTime64(3)"),  # flock.js toISOString()
        (["2024-01-15T10:30:00.123456789Z"], "DateTime64(3)"),  # OTel nanoseconds: still 3
        (["2024-01-01T00:00:00.000+00:00"], "DateTime64(3)"),  # a written fraction counts, even .000
        (["2022-01-05 12:13:14", "2022-01-05"], "DateTime"),
        (["2022-01-05 12:13+02:00"], "DateTime"),
        (["2022-01-05", "2023-12-31"], "Date"),
        (["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-05", "nope"], "Date"),  # 83 %
        (["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "nope"], "String"),  # exactly 80 %
        (["Jan 5 2022", "5 January 2022"], "String"),  # month names
        (["12:13:14", "23:59:59"], "String"),  # bare hh:mm:ss
        (["1/15/2024"], "String"),
        (["Mon, 15 Jan 2024 10:30:00 +0000"], "String"),  # RFC 2822
        (["1950-03-04", "2000-01-01"], "Date32"),  # before Date's 1970: widened, not quarantined
        (["1960-03-04 10:00:00"], "DateTime64(0)"),  # before DateTime's 1970
        (["1800-01-01", "1800-01-02"], "String"),  # outside every date type: not a date at all
    ],
)
def test_string_types(values: list[str], expected: str) -> None:
    assert types(infer(*({"v": v} for v in values))) == {"$.v": expected}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1023, -1023], "Int16"),
        ([1024], "Int32"),
        ([-1024], "Int32"),
        ([2**26 - 1], "Int32"),
        ([2**26], "Int64"),
        ([-(2**63), 2**63 - 1], "Int64"),
        ([2**63], "Int128"),  # never unsigned; past Int64 widened so the row is not quarantined
        ([-(2**255)], "Int256"),
    ],
)
def test_integer_types(values: list[int], expected: str) -> None:
    assert types(infer(*({"n": v} for v in values))) == {"$.n": expected}


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["1.5", "2"], "Float32"),
        (["0.125", "65535.999"], "Float32"),
        (["1.500"], "Float32"),
        (["1.5000"], "Float64"),  # four decimals as written: decided on the source text
        (["1.2345"], "Float64"),
        (["65536.5"], "Float64"),
        (["1.5", "70000"], "Float64"),  # every value, integers included, must be < 2^16
        (["0.30000000000000001"], "Float64"),  # a float repr would say "0.3"
        (["1e3"], "Float32"),
        (["1.5e-2"], "Float32"),
        (["1e-7"], "Float64"),
        (["-2.25"], "Float32"),
    ],
)
def test_float_types(texts: list[str], expected: str) -> None:
    sample = "".join(f'{{"f": {t}}}\n' for t in texts).encode()
    assert types(infer_schema(sample)) == {"$.f": expected}


def test_numbers_beyond_the_widest_types_are_dropped() -> None:
    assert reasons(infer({"n": 2**300})) == {"$.n": "integer out of the Int256 range"}
    inference = infer_schema(b'{"f": 1e400}\n{"f": 1.5}\n')
    assert reasons(inference) == {"$.f": "number out of the Float64 range"}


def test_booleans_are_uint8() -> None:
    assert types(infer({"b": True}, {"b": False})) == {"$.b": "UInt8"}


def test_arrays() -> None:
    inference = infer(
        {"tags": ["a", "b"], "items": [{"id": 1, "price": 9.5}, {"id": 2}], "ts": ["2022-01-05"]},
        {"tags": [], "items": [{"id": 3, "price": 1.25}], "ts": ["2022-01-06", "2022-01-07"]},
    )
    assert types(inference) == {
        "$.tags[:]": "Array(String)",
        "$.items[:].id": "Array(Int16)",
        "$.items[:].price": "Array(Nullable(Float32))",  # an element lacks it
        "$.ts[:]": "Array(Date)",
    }
    assert all(c.default_kind is None for c in inference.columns)


def test_null_elements_and_absent_arrays() -> None:
    inference = infer({"a": [1, None], "o": [None, {"k": "x"}]}, {"b": 1})
    by_path = {c.jsonpath: c for c in inference.columns}
    assert by_path["$.a[:]"].type == "Array(Nullable(Int16))"
    assert by_path["$.o[:].k"].type == "Array(Nullable(String))"
    # Arrays cannot be Nullable: absent from a row, they default to [] instead.
    assert (by_path["$.a[:]"].default_kind, by_path["$.a[:]"].default_expr) == ("DEFAULT", "[]")
    assert "DEFAULT []" in inference.schema
    assert parse_schema(inference.schema) == inference.columns


def test_only_empty_arrays_give_no_column() -> None:
    assert reasons(infer({"a": [], "b": 1}, {"a": []})) == {"$.a[:]": "only empty arrays"}


def test_nullable_when_null_or_absent_in_any_row() -> None:
    inference = infer({"n": 1, "s": "x", "always": 1}, {"n": None, "always": 2})
    assert types(inference) == {"$.always": "Int16", "$.n": "Nullable(Int16)", "$.s": "Nullable(String)"}


def test_column_order_is_presence_then_path() -> None:
    inference = infer({"b": 1, "a": 1, "arr": [1, 2, 3]}, {"b": 2, "c": 3, "arr": [4]})
    assert [c.jsonpath for c in inference.columns] == ["$.arr[:]", "$.b", "$.a", "$.c"]
    assert inference.present_pct == {"arr": 2.0, "b": 1.0, "a": 0.5, "c": 0.5}


def test_invalid_blank_and_non_object_lines_are_skipped() -> None:
    sample = b'\xef\xbb\xbf{"a": 1}\n\n  \nnot json\n[1, 2]\n"text"\n{"a": 2}\r\n{"a": 3, "b"'
    inference = infer_schema(sample)
    assert types(inference) == {"$.a": "Int16"}
    assert inference.rows == 2
    assert infer_schema(b"").columns == []
    assert infer_schema(b"[1]\nnull\n").columns == []


def test_backtick_keys_are_dropped() -> None:
    inference = infer({"a`b": 1, "ok": 1})
    assert inference.dropped == [
        DroppedPath("$.['a`b']", "a key with a backtick cannot be written in a json path annotation")
    ]


def test_nesting_past_the_depth_limit_is_dropped() -> None:
    def nest(levels: int) -> object:
        value: object = 1
        for _ in range(levels - 1):
            value = {"k": value}
        return value

    kept = infer({"ok": nest(MAX_DEPTH)})
    assert [c.jsonpath for c in kept.columns] == ["$.ok" + ".k" * (MAX_DEPTH - 1)]
    deep = infer({"deep": nest(MAX_DEPTH + 5), "ok": 1})
    assert types(deep) == {"$.ok": "Int16"}
    assert deep.dropped == [DroppedPath("$.deep" + ".k" * MAX_DEPTH, f"nested deeper than {MAX_DEPTH} levels")]


def test_array_elements_beyond_the_widest_type_are_dropped() -> None:
    assert reasons(infer({"a": [1, 2**300]})) == {"$.a[:]": "integer out of the Int256 range"}
