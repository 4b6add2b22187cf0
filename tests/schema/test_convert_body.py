"""SPEC §1.5 body rules, §4.3–4.4 paths and missing values, §6 quarantine rows, §2.1 details."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdhouse.schema.columns import Column, parse_schema
from birdhouse.schema.convert import Converted, Converter

_DECODE = msgspec.json.Decoder(float_hook=Decimal)

M7_PREFIX = "Line is not a valid JSON: "


def lines(data: bytes) -> list[dict[str, Any]]:
    assert data == b"" or data.endswith(b"\n")
    return [_DECODE.decode(line) for line in data.splitlines()]


def simple() -> Converter:
    return Converter(parse_schema("a Int32 `json:$.a`, b Nullable(String) `json:$.b`"))


def quarantine_errors(out: Converted) -> list[tuple[list[str], list[str]]]:
    return [(r["c__error_column"], r["c__error"]) for r in lines(out.quarantine)]


# --- body splitting ---------------------------------------------------------------------------------


def test_lines_crlf_blank_and_final_newline() -> None:
    body = b'{"a":1}\r\n\r\n   \n\t\n{"a":2,"b":"x"}\r\n{"a":3}'
    out = simple().convert(body)
    assert (out.successful_rows, out.quarantined_rows) == (3, 0)
    assert lines(out.rows) == [{"a": 1, "b": None}, {"a": 2, "b": "x"}, {"a": 3, "b": None}]
    assert out.quarantine == b""
    assert out.columns == ("a", "b")


def test_empty_body() -> None:
    out = simple().convert(b"")
    assert out == Converted(b"", b"", 0, 0, [], ("a", "b"))
    assert simple().convert(b"\n\n  \r\n").successful_rows == 0


def test_bom_skipped_at_body_start_only() -> None:
    out = simple().convert(b'\xef\xbb\xbf{"a":1}\n\xef\xbb\xbf{"a":2}')
    assert (out.successful_rows, out.quarantined_rows) == (1, 1)
    assert lines(out.rows) == [{"a": 1, "b": None}]
    assert quarantine_errors(out) == [([""], [M7_PREFIX + "'\ufeff{\"a\":2}'"])]


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (b'{"a":NaN}', '{"a":NaN}'),
        (b'{"a":1}{"a":2}', '{"a":1}{"a":2}'),
        (b"{", "{"),
        (b'  "a": 1,', '  "a": 1,'),
        (b'{"a":"\xff\xfe"}', '{"a":"\ufffd\ufffd"}'),
        (b'{"a":"\\ud800"}', '{"a":"\\ud800"}'),
        (b"\x0c", "\x0c"),  # form feed is not JSON whitespace
    ],
)
def test_invalid_json_lines_m7(line: bytes, shown: str) -> None:
    out = simple().convert(b'{"a":1}\n' + line + b"\r\n")
    assert (out.successful_rows, out.quarantined_rows) == (1, 1)
    row = lines(out.quarantine)[0]
    assert row == {
        "a": None,
        "b": None,
        "c__error_column": [""],
        "c__error": [f"{M7_PREFIX}'{shown}'"],
        "c__import_id": None,
    }


def test_pretty_printed_json_is_one_m7_per_line() -> None:
    body = json.dumps({"a": 1, "b": "x"}, indent=2).encode()
    out = simple().convert(body)
    assert out.successful_rows == 0
    assert out.quarantined_rows == 4
    assert [e for _, (e,) in quarantine_errors(out)] == [
        M7_PREFIX + "'{'",
        M7_PREFIX + "'  \"a\": 1,'",
        M7_PREFIX + '\'  "b": "x"\'',
        M7_PREFIX + "'}'",
    ]


def test_m7_line_is_cut_at_1024_characters() -> None:
    line = "é" * 2000
    out = simple().convert(line.encode())
    [(_, [message])] = quarantine_errors(out)
    assert message == f"{M7_PREFIX}'{'é' * 1024}…'"
    exact = "x" * 1024
    [(_, [message])] = quarantine_errors(simple().convert(exact.encode()))
    assert message == f"{M7_PREFIX}'{exact}'"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b"[1, 2]", "list"),
        (b"[]", "list"),
        (b'"x"', "string"),
        (b"12", "number"),
        (b"1.5", "number"),
        (b"true", "boolean"),
        (b"null", "null"),
    ],
)
def test_non_object_roots_m8(line: bytes, kind: str) -> None:
    out = simple().convert(line)
    assert quarantine_errors(out) == [([""], [f"JSON root must be an object, but it was a {kind}"])]
    assert lines(out.quarantine)[0]["a"] is None


def test_unrepresentable_valid_json_is_m9() -> None:
    out = simple().convert(b'{"a": 1' + b"0" * 5000 + b"}\n" + b"[" * 5000 + b"]" * 5000)
    assert out.quarantined_rows == 2
    for columns, [message] in quarantine_errors(out):
        assert columns == [""]
        assert message.startswith("Unknown error when parsing NDJSON: ")


def test_duplicate_keys_last_wins_and_unknown_keys_ignored() -> None:
    out = simple().convert(b'{"a":1,"zzz":{"x":[1]},"a":2,"b":"x","b":"y"}')
    assert lines(out.rows) == [{"a": 2, "b": "y"}]


def test_expand_json_array_lines() -> None:
    conv = Converter(parse_schema("a Int32 `json:$.a`, raw String `json:$`"), expand_json_array_lines=True)
    out = conv.convert(b'[{"a":1},{"a":2}]\n[]\n[{"a":1},2]\n{"a":3}', details=True)
    assert (out.successful_rows, out.quarantined_rows) == (3, 2)
    assert lines(out.rows) == [
        {"a": 1, "raw": '{"a":1}'},
        {"a": 2, "raw": '{"a":2}'},
        {"a": 3, "raw": '{"a":3}'},
    ]
    assert [d["line"] for d in out.details] == [2, 3]


# --- json paths -------------------------------------------------------------------------------------


def test_paths() -> None:
    cols = parse_schema(
        """
        code String `json:$.['product.code']`,
        id String `json:$.product.['code.id']`,
        deep Int64 `json:$.a.b.c`,
        ids Array(String) `json:$.['a-b'][:].id`,
        whole Array(Int32) `json:$.nums[:]`,
        same Array(Int32) `json:$.nums`,
        """
    )
    body = {
        "product.code": "p1",
        "product": {"code.id": "c1"},
        "a": {"b": {"c": 7}},
        "a-b": [{"id": "x"}, {"id": "y"}],
        "nums": [1, 2],
    }
    out = Converter(cols).convert(json.dumps(body).encode())
    assert lines(out.rows) == [
        {"code": "p1", "id": "c1", "deep": 7, "ids": ["x", "y"], "whole": [1, 2], "same": [1, 2]}
    ]


def test_root_path_takes_the_raw_line() -> None:
    cols = parse_schema("data String `json:$`, j JSON `json:$`, a Int32 `json:$.a`")
    line = b'{"a": 1,  "z": [1.50, "\\u00e9"]}'
    out = Converter(cols).convert(line + b"\r\n")
    [row] = lines(out.rows)
    assert row["data"] == line.decode()  # exactly as sent, trailing \r\n stripped
    assert row["j"] == {"a": 1, "z": [Decimal("1.50"), "é"]}


def test_array_map_paths() -> None:
    cols = parse_schema("ids Array(String) `json:$.items[:].id`, n Array(Nullable(Int32)) `json:$.items[:].n`")
    conv = Converter(cols)
    out = conv.convert(b'{"items":[{"id":"a","n":1},{"id":"b"}]}\n{"items":[{"n":2}]}\n{"items":[]}\n{"items":null}')
    assert lines(out.rows) == [
        {"ids": ["a", "b"], "n": [1, None]},
        {"ids": [], "n": []},
        {"ids": [], "n": []},
    ]
    m2 = "Strict type checking failed. Null value not allowed on column 'ids'. While accessing jsonpath '$.items[:].id'"
    assert quarantine_errors(out) == [(["ids"], [m2])]
    assert lines(out.quarantine)[0]["ids"] == "[null]"
    assert lines(out.quarantine)[0]["n"] == "[2]"


# --- §4.4 missing values, NULL, DEFAULT -------------------------------------------------------------

M1 = (
    "Strict type checking failed. Object does not have column 'c', you should send a value or recreate the "
    "table with a Nullable column type. While accessing jsonpath '{path}'"
)
M2 = "Strict type checking failed. Null value not allowed on column 'c'. While accessing jsonpath '{path}'"
OMIT = object()


@pytest.mark.parametrize(
    ("column", "absent_top", "absent_nested", "null"),
    [
        ("c Nullable(Int32)", None, None, None),
        ("c Int32 DEFAULT 7", OMIT, OMIT, OMIT),
        ("c Array(Int32)", "M1", "M2", []),
        ("c Array(Int32) DEFAULT [1]", OMIT, OMIT, OMIT),
        ("c Int32", "M1", "M2", "M2"),
        ("c String", "M1", "M2", "M2"),
        ("c Map(String, String)", "M1", "M2", "M2"),
        ("c Nullable(Int32) DEFAULT 7", OMIT, OMIT, None),
        ("c LowCardinality(Nullable(String)) DEFAULT 'x'", OMIT, OMIT, None),
        ("c DateTime DEFAULT now()", OMIT, OMIT, OMIT),
    ],
)
def test_missing_null_default_table(column: str, absent_top: object, absent_nested: object, null: object) -> None:
    for path, body, expected in (
        ("$.k", b"{}", absent_top),
        ("$.a.k", b'{"a": {}}', absent_nested),
        ("$.a.k", b'{"a": 5}', absent_nested),  # `a` not an object
        ("$.a.k", b"{}", absent_nested),
        ("$.k", b'{"k": null}', null),
        ("$.a.k", b'{"a": {"k": null}}', null),
    ):
        [col] = parse_schema(f"{column} `json:{path}`")
        out = Converter([col]).convert(body)
        if expected in ("M1", "M2"):
            message = (M1 if expected == "M1" else M2).format(path=path)
            assert quarantine_errors(out) == [(["c"], [message])], (path, body)
            assert out.rows == b""
        else:
            assert out.quarantined_rows == 0, (path, body, out.quarantine)
            assert lines(out.rows) == [{} if expected is OMIT else {"c": expected}], (path, body)


def test_default_overridden_by_payload_and_bad_value_still_quarantines() -> None:
    [col] = parse_schema("ts DateTime `json:$.ts` DEFAULT now()")
    out = Converter([col]).convert(b'{"ts": "2024-01-15 10:30:00"}\n{"ts": "bad"}')
    assert lines(out.rows) == [{"ts": 1705314600}]
    assert quarantine_errors(out) == [
        (["ts"], ["Error DateTime parser failed. While processing column 'ts' with jsonpath '$.ts'"])
    ]


def test_columns_without_path_are_left_to_the_engine() -> None:
    cols = parse_schema(
        "a Int32 `json:$.a`, d DateTime DEFAULT now(), m String MATERIALIZED toString(a), "
        "al Int32 ALIAS a + 1, n Nullable(String)"
    )
    conv = Converter(cols)
    assert conv.columns == ("a",)
    out = conv.convert(b'{"a": 1, "d": 5, "m": "x", "n": "y"}\n{"a": "x", "n": "y"}')
    assert lines(out.rows) == [{"a": 1}]
    [q] = lines(out.quarantine)
    # every stored column, same order, NULL without a path; MATERIALIZED/ALIAS are not in the quarantine table
    assert list(q) == ["a", "d", "n", "c__error_column", "c__error", "c__import_id"]
    assert (q["a"], q["d"], q["n"]) == ("x", None, None)


# --- quarantine rows (§6) ---------------------------------------------------------------------------


def test_quarantine_rows_all_failing_columns_and_value_texts() -> None:
    cols = parse_schema(
        """
        id UUID `json:$.id`,
        n UInt8 `json:$.n`,
        s String `json:$.s`,
        obj String `json:$.obj`,
        f Float64 `json:$.f`,
        arr Array(String) `json:$.arr`,
        ok Nullable(String) `json:$.ok`,
        missing Int32 `json:$.missing`,
        """
    )
    body = b'{"id": "nope", "n": 256, "s": true, "obj": {"x": [1, 2.50]}, "f": "1", "arr": [1], "ok": "fine"}'
    out = Converter(cols).convert(body, details=True)
    assert (out.successful_rows, out.quarantined_rows) == (0, 1)
    [q] = lines(out.quarantine)
    assert q == {
        "id": "nope",
        "n": "256",
        "s": "true",
        "obj": '{"x":[1,2.50]}',
        "f": "1",
        "arr": "[1]",
        "ok": "fine",
        "missing": None,
        "c__error_column": ["id", "n", "s", "f", "arr", "missing"],
        "c__error": [
            "Error UUID parser failed. While processing column 'id' with jsonpath '$.id'",
            "Value 256 out of bounds for type 'UInt8' in column 'n' with jsonpath '$.n'. "
            "Value must be between 0 and 255",
            "Strict type checking failed. Value true on column 's' is a boolean when a String was expected. "
            "While accessing jsonpath '$.s'",
            "Strict type checking failed. Value 1 on column 'f' is a string when a Float64 was expected. "
            "While accessing jsonpath '$.f'",
            "Strict type checking failed. Value 1 on column 'arr' is a number when a String was expected. "
            "While accessing jsonpath '$.arr'",
            "Strict type checking failed. Object does not have column 'missing', you should send a value or "
            "recreate the table with a Nullable column type. While accessing jsonpath '$.missing'",
        ],
        "c__import_id": None,
    }
    assert out.details == [{"line": 1, "columns": q["c__error_column"], "errors": q["c__error"]}]


def test_details_only_when_asked_and_capped_at_100() -> None:
    body = b"\n".join([b'{"a": "x"}'] * 150 + [b'{"a": 1}'])
    conv = simple()
    assert conv.convert(body).details == []
    out = conv.convert(b"\n" + body, details=True)
    assert (out.successful_rows, out.quarantined_rows) == (1, 150)
    assert len(out.details) == 100
    assert [d["line"] for d in out.details[:3]] == [2, 3, 4]  # 1-based physical line numbers
    assert out.details[0]["columns"] == ["a"]


def test_lenient_mode() -> None:
    cols = parse_schema("s String `json:$.s`, i Int32 `json:$.i`, b Bool `json:$.b`, f Float32 `json:$.f`")
    body = b'{"s": [1, 2.0], "i": 3.0, "b": "true", "f": "2.5"}'
    assert simple().convert(body).quarantined_rows == 1
    strict = Converter(cols).convert(body)
    assert [c for c, _ in quarantine_errors(strict)] == [["s", "i", "b", "f"]]
    out = Converter(cols, lenient=True).convert(body)
    assert lines(out.rows) == [{"s": "[1,2.0]", "i": 3, "b": True, "f": Decimal("2.5")}]


# --- properties -------------------------------------------------------------------------------------

_SCHEMA = parse_schema(
    """
    s String `json:$.s`, i Int64 `json:$.i`, u Nullable(UInt8) `json:$.u`, f Float32 `json:$.f`,
    d Decimal(9, 3) `json:$.d`, b Bool `json:$.b` DEFAULT false, id UUID `json:$.id` DEFAULT generateUUIDv4(),
    t DateTime64(9, 'Asia/Tokyo') `json:$.t`, dt Nullable(Date) `json:$.dt`,
    arr Array(Nullable(Int16)) `json:$.arr`,
    ids Array(String) `json:$.arr[:].id`, m Map(String, Int32) `json:$.m`, j JSON `json:$.j`,
    fx FixedString(3) `json:$.fx`, raw String `json:$`, nested Int8 `json:$.a.b`
    """
)
_KEYS = st.sampled_from(["s", "i", "u", "f", "d", "b", "id", "t", "dt", "arr", "m", "j", "fx", "a", "b", "id", "x"])
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "2024-01-15T10:30:00.123456789Z",
            "1",
            "-5",
            "550e8400-e29b-41d4-a716-446655440000",
            "1.5",
            "abc",
            "true",
            "2300-01-01",
        ]
    )
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function: hypothesis checks that ``extend`` uses its argument by
    # reading its source, which a multi-line lambda can defeat.
    return st.lists(inner, max_size=4) | st.dictionaries(st.one_of(_KEYS, st.text(max_size=5)), inner, max_size=4)


_VALUES = st.recursive(_SCALARS, _containers, max_leaves=12)
_OBJECTS = st.dictionaries(_KEYS, _VALUES, max_size=10)
_CONVERTER = Converter(_SCHEMA)


def _non_blank(body: bytes) -> int:
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    return sum(1 for line in body.split(b"\n") if line.strip(b" \t\r"))


@settings(max_examples=300, deadline=None)
@given(st.lists(_OBJECTS, max_size=5))
def test_any_objects_never_raise(objects: list[dict[str, Any]]) -> None:
    body = b"\n".join(json.dumps(o).encode() for o in objects)
    out = _CONVERTER.convert(body, details=True)
    assert out.successful_rows + out.quarantined_rows == len(objects)
    assert len(lines(out.rows)) == out.successful_rows
    assert len(lines(out.quarantine)) == out.quarantined_rows
    assert len(out.details) == out.quarantined_rows


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from([b"{}", b'{"s":"x"}', b" ", b"\r", b"[{}]"]), max_size=6))
def test_any_bytes_never_raise(chunks: list[bytes]) -> None:
    body = b"\n".join(chunks)
    for conv in (_CONVERTER, Converter(_SCHEMA, lenient=True)):
        out = conv.convert(body)
        assert out.successful_rows + out.quarantined_rows == _non_blank(body)
        assert len(lines(out.quarantine)) == out.quarantined_rows


def test_one_schema_compiled_once_reused() -> None:
    conv = Converter([Column("a", "Int32", jsonpath="$.a")])
    first = conv.convert(b'{"a": 1}')
    second = conv.convert(b'{"a": 1}')
    assert first == second


def test_shared_converter_across_threads() -> None:
    conv = simple()
    bodies = [b"\n".join(b'{"a": %d, "b": "x"}' % i for i in range(n)) + b'\n{"a": "bad"}' for n in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(conv.convert, bodies))
    for n, out in enumerate(results):
        assert (out.successful_rows, out.quarantined_rows) == (n, 1)
        assert [r["a"] for r in lines(out.rows)] == list(range(n))


def test_types_outside_the_ingest_list_fail_at_compile_time() -> None:
    with pytest.raises(TypeError, match="cannot ingest into Enum8"):
        Converter([Column("e", "Enum8('a' = 1)", jsonpath="$.e")])
    with pytest.raises(TypeError, match="cannot ingest into IntervalDay"):
        Converter([Column("e", "Array(IntervalDay)", jsonpath="$.e")])
