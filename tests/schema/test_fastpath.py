"""The generated per-schema fast path decides exactly what the general path
decides: same rows (bytes), same quarantine rows and messages, same details,
for random schemas and random lines, good and bad."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdhouse.schema.columns import parse_schema
from birdhouse.schema.convert import Converter

# (type, values that exercise it: in range, at and past the bounds, wrong kinds)
_TYPES: dict[str, list[Any]] = {
    "String": ["", "x", "ñ", 1, 1.5, True, {"k": [1, 2.5]}, [1]],
    "LowCardinality(String)": ["a", 2],
    "Nullable(String)": ["b", None, {"a": 1}],
    "FixedString(3)": ["abc", "abcd", 7],
    "Int8": [-128, 127, 128, -129, "5", 1.0, True],
    "UInt8": [0, 255, 256, -1, False],
    "Int32": [2**31 - 1, -(2**31), 2**31, "12", "x"],
    "Int64": [2**63 - 1, -(2**63), 2**63],
    "UInt64": [0, 2**64 - 1, 2**64, 2**70, -1, "18446744073709551615"],
    "Nullable(Int64)": [None, 3, "4", 2**63],
    "Int128": [2**100, -(2**127), 2**127],
    "Float64": [0.1, 1e308, 1e309, -2.5e-320, 3, 2**70, "1.5", True],
    "Float32": [3.4e38, 3.5e38, 0.1],
    "Nullable(Float64)": [None, 1.25],
    "Bool": [True, False, 1, "true"],
    "DateTime": [
        "2024-05-01 10:00:00",
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:00.123Z",
        "2024-05-01T10:00:00.9Z",
        "2024-05-01T10:00:00,123456789",
        "2024-05-01T10:00:00.1234567891Z",
        "2024-05-01T10:00:00.5+02:00",
        1714557600,
        1714557600123,
        "nope",
        2**40,
    ],
    "Nullable(DateTime)": ["nope", None, "2024-02-30 00:00:00", "2024-02-30T00:00:00.250Z"],
    "DateTime64(3)": ["2024-05-01T10:00:00.123Z", 1714557600.5],
    "Date": ["2024-05-01", "2024-13-01", "2024-05-01T23:59:59.999Z", "2024-13-01T00:00:00.5Z"],
    "UUID": ["0f8fad5b-d9cb-469f-a165-70867728950e", "x"],
    "Decimal(10, 2)": [1.25, 1.255, "3.10", 1e20],
    "Array(Int32)": [[1, 2], [], [1, "x"], None, 5],
    "Map(String, Int32)": [{"a": 1}, {"a": "x"}],
    "JSON": [{"a": {"b": 1}}, [1]],
}
_NAMES = ["a", "b", "c", "d", "e", "f"]
# Lines the struct decode alone would get wrong: it skips keys no column reads
# without checking their UTF-8 or building their numbers.
_RAW_LINES = [
    b"",
    b"  \r",
    b"{bad",
    b"[1,2]",
    b"3",
    b'{"a":1} {"a":2}',
    b"null",
    b'{"a":1,"zz":"\xff"}',
    b'{"a":1,"\xc0\xaf":2}',
    b'{"a":1,"zz":' + b"9" * 5000 + b"}",
    b'{"a":1,"zz":"' + b"9" * 5000 + b'"}',
    b'{"a":1e1000000000000000000}',
    b'{"a":0e1000000000000000000,"zz":-1E+1000000000000000000}',
    b'{"a":-0e-1000000000000000000,"zz":1e-1000000000000000000}',
]


@st.composite
def schemas(draw: st.DrawFn) -> tuple[str, list[str]]:
    types = draw(st.lists(st.sampled_from(sorted(_TYPES)), min_size=1, max_size=len(_NAMES)))
    pieces = []
    for name, ch_type in zip(_NAMES, types, strict=False):
        default = ""
        if draw(st.booleans()) and ch_type in ("String", "Int32", "UInt64", "Float64", "DateTime"):
            default = {"String": " DEFAULT 'dflt'", "DateTime": " DEFAULT now()"}.get(ch_type, " DEFAULT 7")
        pieces.append(f"{name} {ch_type}{default} `json:$.{name}`")
    return ", ".join(pieces), types


def _value(draw: st.DrawFn, ch_type: str) -> Any:
    return draw(st.sampled_from(_TYPES[ch_type]) | st.sampled_from(_TYPES[draw(st.sampled_from(sorted(_TYPES)))]))


@st.composite
def bodies(draw: st.DrawFn, types: list[str]) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append(draw(st.sampled_from(_RAW_LINES)))
            continue
        row: dict[str, Any] = {}
        for name, ch_type in zip(_NAMES, types, strict=False):
            if draw(st.integers(0, 5)) == 0:
                continue  # missing key
            row[name] = None if draw(st.integers(0, 7)) == 0 else _value(draw, ch_type)
        if draw(st.booleans()):
            row["unknown"] = {"nested": [1, 2]}
        text = json.dumps(row, separators=(",", ":"))
        lines.append(text.encode() + draw(st.sampled_from([b"", b"\r"])))
    return b"\n".join(lines) + draw(st.sampled_from([b"", b"\n"]))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fast_path_decides_exactly_as_the_general_path(data: st.DataObject) -> None:
    schema, types = data.draw(schemas())
    body = data.draw(bodies(types))
    columns = parse_schema(schema)
    fast = Converter(columns)
    general = Converter(columns, fast=False)
    assert fast._fast is not None and general._fast is None
    assert fast.convert(body, details=True) == general.convert(body, details=True)


def test_clean_rows_never_reach_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    converter = Converter(parse_schema("t DateTime `json:$.t`, n UInt64 `json:$.n`, s String `json:$.s`"))
    calls: list[int] = []
    general = Converter._line

    def counted(self: Converter, lineno: int, *args: Any) -> None:
        calls.append(lineno)
        general(self, lineno, *args)

    monkeypatch.setattr(Converter, "_line", counted)
    body = b'{"t":"2024-05-01 10:00:00","n":1,"s":"x"}\n' * 50 + b'{"t":"2024-05-01 10:00:00","n":-1,"s":"x"}\n'
    out = converter.convert(body)
    assert (out.successful_rows, out.quarantined_rows) == (50, 1)
    assert calls == [51]  # only the row the fast path could not take


@pytest.mark.parametrize(
    "schema",
    [
        "a String `json:$.a.b`",  # a path walk
        "a String `json:$`",  # the raw line
        "a String `json:$.x`, b Int32 `json:$.x`",  # two columns, one key
        "a String `json:$.['q\"uote']`",  # a key msgspec cannot rename to
    ],
)
def test_schemas_outside_the_fast_path_use_the_general_path(schema: str) -> None:
    try:
        columns = parse_schema(schema)
    except Exception:
        pytest.skip("not a valid schema here")
    assert Converter(columns)._fast is None


def test_date_memo_is_bounded_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    from birdhouse.schema import fastpath

    monkeypatch.setattr(fastpath, "MEMO_SIZE", 8)
    columns = parse_schema("t DateTime `json:$.t`, d Nullable(Date) `json:$.d`")
    fast, general = Converter(columns), Converter(columns, fast=False)
    texts = [f"2024-05-{1 + i % 28:02d} 10:{i % 60:02d}:00" for i in range(40)]
    body = "\n".join(
        json.dumps({"t": t, "d": t[:10] if i % 3 else "2024-02-30"}) for i, t in enumerate(texts * 2)
    ).encode()
    assert fast.convert(body) == general.convert(body)
    # 40 distinct texts through an 8-entry memo: it was cleared, never grew past its size.
    memos = [v for k, v in fast._fast.run.__globals__.items() if k.startswith("m") and isinstance(v, dict)]  # type: ignore[union-attr]
    assert memos and all(len(m) <= 8 for m in memos)


def test_fractions_share_their_whole_second_only_where_the_column_drops_them() -> None:
    columns = parse_schema("t DateTime `json:$.t`, d Date `json:$.d`, m DateTime64(3) `json:$.m`")
    fast, general = Converter(columns), Converter(columns, fast=False)
    texts = [
        "2024-05-01T10:00:00.000Z",
        "2024-05-01T10:00:00.999Z",  # same second: one memo entry, the same stored value
        "2024-05-01T10:00:00Z",
        "2024-05-01 10:00:00,5",
        "2024-05-01T10:00:00.5+01:00",  # an offset moves the instant: not a whole-second key
        "2024-05-01T10:00:01.001Z",
        "2024-02-30T10:00:00.5Z",  # invalid whichever fraction: quarantined by both paths
        "2024-02-30T10:00:00.6Z",
        "2024-05-01T10:00:00.1234567890Z",  # ten digits: not a date text at all
    ]
    body = "\n".join(json.dumps({"t": t, "d": t, "m": t}) for t in texts * 2).encode()
    assert fast.convert(body, details=True) == general.convert(body, details=True)
    got = fast.convert(body)
    assert got.successful_rows == 12 and got.quarantined_rows == 6
    memos = [v for k, v in fast._fast.run.__globals__.items() if k.startswith("m") and isinstance(v, dict)]  # type: ignore[union-attr]
    # DateTime and Date: three whole seconds ("…T10:00:00Z", "… 10:00:00", "…T10:00:01Z"); DateTime64(3),
    # where the fraction is stored, only memoises the one text without a fraction.
    assert sorted(len(m) for m in memos) == [1, 3, 3]


@pytest.mark.parametrize("line", _RAW_LINES[7:])
def test_lines_the_struct_alone_would_accept(line: bytes) -> None:
    columns = parse_schema("a Float64 `json:$.a`, b Nullable(Int32) `json:$.b`")
    body = b'{"a":1.5}\n' + line + b"\n"
    assert Converter(columns).convert(body, details=True) == Converter(columns, fast=False).convert(body, details=True)


@pytest.mark.parametrize("max_line", [50, 5000])
def test_line_cap_below_and_above_the_digit_run_check(max_line: int) -> None:
    columns = parse_schema("a String `json:$.a`")
    lines = [json.dumps({"a": "x" * n}).encode() for n in (10, 100, 4400, 6000)]
    body = b"\n".join(lines)
    fast = Converter(columns, max_line_bytes=max_line).convert(body, details=True)
    assert fast == Converter(columns, max_line_bytes=max_line, fast=False).convert(body, details=True)
    assert fast.quarantined_rows == (3 if max_line == 50 else 1)
