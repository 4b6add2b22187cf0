"""SPEC §5 per type, with the exact §5.2 message texts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from birdhouse.schema.columns import Column
from birdhouse.schema.convert import Converter

_DECODE = msgspec.json.Decoder(float_hook=Decimal)
ABSENT = object()


def stored(type_sql: str, payload: str, *, lenient: bool = False, path: str = "$.v") -> Any:
    """The JSONEachRow value the converter emits for ``{"v": payload}`` (ABSENT if the key is omitted)."""
    out = Converter([Column("v", type_sql, jsonpath=path)], lenient=lenient).convert(f'{{"v": {payload}}}'.encode())
    assert out.quarantined_rows == 0, out.quarantine
    assert out.successful_rows == 1
    row = _DECODE.decode(out.rows)
    return row.get("v", ABSENT)


def errors(type_sql: str, payload: str, *, lenient: bool = False, path: str = "$.v") -> list[str]:
    out = Converter([Column("v", type_sql, jsonpath=path)], lenient=lenient).convert(f'{{"v": {payload}}}'.encode())
    assert out.successful_rows == 0, out.rows
    assert out.quarantined_rows == 1
    row = _DECODE.decode(out.quarantine)
    assert row["c__error_column"] == ["v"] * len(row["c__error"])
    errs: list[str] = row["c__error"]
    return errs


def m3(value: str, jtype: str, type_sql: str, col: str = "v", path: str = "$.v") -> str:
    return (
        f"Strict type checking failed. Value {value} on column '{col}' is a {jtype} when a {type_sql} "
        f"was expected. While accessing jsonpath '{path}'"
    )


def m4(value: str, type_sql: str, lo: str, hi: str) -> str:
    return (
        f"Value {value} out of bounds for type '{type_sql}' in column 'v' with jsonpath '$.v'. "
        f"Value must be between {lo} and {hi}"
    )


M2 = "Strict type checking failed. Null value not allowed on column 'v'. While accessing jsonpath '$.v'"
M6 = "Error DateTime parser failed. While processing column 'v' with jsonpath '$.v'"
M10 = "Error UUID parser failed. While processing column 'v' with jsonpath '$.v'"
M11 = "Error Decimal parser failed. While processing column 'v' with jsonpath '$.v'"


# --- String, LowCardinality(String), FixedString ---------------------------------------------------


@pytest.mark.parametrize("type_sql", ["String", "LowCardinality(String)", "Nullable(String)"])
def test_string(type_sql: str) -> None:
    assert stored(type_sql, '"héllo \\"x\\" \\u00e9"') == 'héllo "x" é'
    assert stored(type_sql, '""') == ""
    assert stored(type_sql, '{"b": 1, "a": [1.50, true, null], "big": 123456789012345678901234567890}') == (
        '{"b":1,"a":[1.50,true,null],"big":123456789012345678901234567890}'
    )


@pytest.mark.parametrize(
    ("payload", "value", "jtype"),
    [
        ("1", "1", "number"),
        ("1.5", "1.5", "number"),
        ("true", "true", "boolean"),
        ('[1, "a"]', '[1,"a"]', "array"),
    ],
)
def test_string_wrong_type(payload: str, value: str, jtype: str) -> None:
    assert errors("String", payload) == [m3(value, jtype, "String")]
    assert errors("LowCardinality(String)", payload) == [m3(value, jtype, "LowCardinality(String)")]
    assert stored("String", payload, lenient=True) == value


def test_fixed_string() -> None:
    assert stored("FixedString(4)", '"ab"') == "ab"
    assert stored("FixedString(4)", '"abcd"') == "abcd"
    assert stored("FixedString(2)", '"é"') == "é"  # 2 UTF-8 bytes
    assert errors("FixedString(2)", '"éa"') == [
        "Value 'éa' is too long for type 'FixedString(2)' in column 'v' with jsonpath '$.v'"
    ]
    assert errors("FixedString(4)", "12") == [m3("12", "number", "FixedString(4)")]


# --- integers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_sql", "lo", "hi"),
    [
        ("Int8", -128, 127),
        ("UInt8", 0, 255),
        ("Int16", -32768, 32767),
        ("UInt16", 0, 65535),
        ("Int32", -(2**31), 2**31 - 1),
        ("UInt32", 0, 2**32 - 1),
        ("Int64", -(2**63), 2**63 - 1),
        ("UInt64", 0, 2**64 - 1),
        ("Int128", -(2**127), 2**127 - 1),
        ("UInt128", 0, 2**128 - 1),
        ("Int256", -(2**255), 2**255 - 1),
        ("UInt256", 0, 2**256 - 1),
    ],
)
def test_integer_ranges(type_sql: str, lo: int, hi: int) -> None:
    assert stored(type_sql, str(lo)) == lo
    assert stored(type_sql, str(hi)) == hi
    assert stored(type_sql, f'"{hi}"') == hi  # D9: SDK bigints as strings
    assert stored(type_sql, f'"{lo}"') == lo
    assert errors(type_sql, str(hi + 1)) == [m4(str(hi + 1), type_sql, str(lo), str(hi))]
    assert errors(type_sql, str(lo - 1)) == [m4(str(lo - 1), type_sql, str(lo), str(hi))]
    assert errors(type_sql, f'"{hi + 1}"') == [m4(str(hi + 1), type_sql, str(lo), str(hi))]


def test_integer_forms() -> None:
    assert stored("Int32", "true") == 1
    assert stored("UInt8", "false") == 0
    assert stored("Int32", '"007"') == 7
    assert stored("Int32", '"-0"') == 0
    assert stored("Int64", "-0") == 0
    assert stored("UInt64", "18446744073709551615") == 18446744073709551615  # exact, never a float
    assert stored("Int32", "1.0", lenient=True) == 1
    assert stored("Int32", "1e3", lenient=True) == 1000


@pytest.mark.parametrize(
    ("payload", "value", "jtype"),
    [
        ("1.0", "1.0", "number"),
        ("1e3", "1E+3", "number"),
        ("1.5", "1.5", "number"),
        ('"1.0"', "1.0", "string"),
        ('"abc"', "abc", "string"),
        ('"+5"', "+5", "string"),
        ('" 5"', " 5", "string"),
        ('""', "", "string"),
        ('"١٢"', "١٢", "string"),
        ("[1]", "[1]", "array"),
        ('{"a":1}', '{"a":1}', "object"),
    ],
)
def test_integer_wrong_type(payload: str, value: str, jtype: str) -> None:
    assert errors("Int32", payload) == [m3(value, jtype, "Int32")]


def test_integer_lenient_still_rejects() -> None:
    assert errors("Int32", "1.5", lenient=True) == [m3("1.5", "number", "Int32")]
    assert errors("Int8", "1000.0", lenient=True) == [m4("1000.0", "Int8", "-128", "127")]
    assert errors("Int8", "1e400", lenient=True) == [m3("1E+400", "number", "Int8")]


def test_integer_huge_string_is_out_of_bounds() -> None:
    digits = "9" * 5000
    assert errors("UInt256", f'"{digits}"') == [m4(digits, "UInt256", "0", str(2**256 - 1))]
    assert stored("UInt8", '"' + "0" * 5000 + '12"') == 12


def test_nullable_integer_errors_still_quarantine() -> None:
    assert errors("Nullable(Int32)", '"x"') == [m3("x", "string", "Nullable(Int32)")]
    assert errors("Nullable(UInt8)", "-1") == [m4("-1", "Nullable(UInt8)", "0", "255")]
    assert stored("Nullable(Int32)", "5") == 5


# --- floats -----------------------------------------------------------------------------------------


def test_floats() -> None:
    assert stored("Float64", "1.5") == Decimal("1.5")
    assert stored("Float64", "1") == 1.0
    assert stored("Float64", "0.1") == Decimal("0.1")
    assert stored("Float32", "3.4028235e38") == Decimal("3.4028235E+38")
    assert stored("Float64", "1e-400") == 0
    assert stored("Float64", "123456789012345678901234567890") == Decimal("1.2345678901234568E+29")
    assert stored("Float64", '"2.5"', lenient=True) == Decimal("2.5")
    assert stored("Float64", '"-1e3"', lenient=True) == -1000


def test_float_errors() -> None:
    assert errors("Float64", '"1.5"') == [m3("1.5", "string", "Float64")]
    assert errors("Float32", "true") == [m3("true", "boolean", "Float32")]
    assert errors("Float64", '"nan"', lenient=True) == [m3("nan", "string", "Float64")]
    f64 = ("-1.7976931348623157e308", "1.7976931348623157e308")
    assert errors("Float64", "1e999") == [m4("1E+999", "Float64", *f64)]
    assert errors("Float64", "1" + "0" * 400) == [m4("1" + "0" * 400, "Float64", *f64)]
    f32 = ("-3.4028234663852886e38", "3.4028234663852886e38")
    assert errors("Float32", "-3.5e38") == [m4("-3.5E+38", "Float32", *f32)]


# --- Decimal ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_sql", "payload", "expected"),
    [
        ("Decimal(10, 2)", "1.005", "1.00"),  # half-even on the source digits (a float would give 1.00 too,
        ("Decimal(10, 2)", "1.015", "1.02"),  # but 1.015 as a double is 1.01499…: no float round trip)
        ("Decimal(10, 2)", "1.025", "1.02"),
        ("Decimal(10, 2)", "-1.035", "-1.04"),
        ("Decimal(10, 2)", '"12.345"', "12.34"),
        ("Decimal(10, 2)", "7", "7.00"),
        ("Decimal(10, 2)", '"-7"', "-7.00"),
        ("Decimal(10, 2)", "1e2", "100.00"),
        ("Decimal(10, 2)", "-0.001", "0.00"),
        ("Decimal(10, 2)", "0", "0.00"),
        ("Decimal(10, 2)", "0e99999", "0.00"),
        ("Decimal(5, 2)", "999.994", "999.99"),
        ("Decimal(3, 3)", "0.9994", "0.999"),
        (
            "Decimal(38, 10)",
            "1234567890123456789012345678.0123456789",
            "1234567890123456789012345678.0123456789",
        ),
        ("Decimal32(2)", '"1234567.891"', "1234567.89"),
        ("Decimal64(4)", "0.00005", "0.0000"),
        ("Decimal128(2)", "1E-999999", "0.00"),
        ("Decimal256(0)", "9" * 76, "9" * 76),
        ("Nullable(Decimal(10, 2))", "3.14159", "3.14"),
    ],
)
def test_decimal(type_sql: str, payload: str, expected: str) -> None:
    assert stored(type_sql, payload) == expected


def test_decimal_errors() -> None:
    assert errors("Decimal(5, 2)", "1000") == [m4("1000", "Decimal(5, 2)", "-999.99", "999.99")]
    assert errors("Decimal(5, 2)", "999.995") == [m4("999.995", "Decimal(5, 2)", "-999.99", "999.99")]
    assert errors("Decimal(5, 2)", '"-1000.5"') == [m4("-1000.5", "Decimal(5, 2)", "-999.99", "999.99")]
    assert errors("Decimal(3, 3)", "1") == [m4("1", "Decimal(3, 3)", "-0.999", "0.999")]
    assert errors("Decimal32(2)", "1e999") == [m4("1E+999", "Decimal32(2)", "-9999999.99", "9999999.99")]
    big = "1" + "0" * 100
    assert errors("Decimal256(0)", big) == [m4(big, "Decimal256(0)", "-" + "9" * 76, "9" * 76)]
    for bad in ('"abc"', '"1.2.3"', '"NaN"', '"Infinity"', '""', '" 1"', '"1,5"'):
        assert errors("Decimal(10, 2)", bad) == [M11], bad
    assert errors("Decimal(10, 2)", "true") == [m3("true", "boolean", "Decimal(10, 2)")]
    assert errors("Decimal(10, 2)", "[1]") == [m3("[1]", "array", "Decimal(10, 2)")]


# --- Bool, UUID -------------------------------------------------------------------------------------


def test_bool() -> None:
    assert stored("Bool", "true") is True
    assert stored("Bool", "false") is False
    assert stored("Bool", "1") is True
    assert stored("Bool", "0") is False
    assert stored("Bool", '"true"', lenient=True) is True
    assert stored("Bool", '"false"', lenient=True) is False
    assert errors("Bool", '"true"') == [m3("true", "string", "Bool")]
    assert errors("Bool", "2") == [m3("2", "number", "Bool")]
    assert errors("Bool", "1.0") == [m3("1.0", "number", "Bool")]
    assert errors("Bool", '"yes"', lenient=True) == [m3("yes", "string", "Bool")]


@pytest.mark.parametrize(
    "payload",
    [
        '"550e8400-e29b-41d4-a716-446655440000"',
        '"550E8400-E29B-41D4-A716-446655440000"',
        '"550e8400e29b41d4a716446655440000"',
        '"{550e8400-e29b-41d4-a716-446655440000}"',
        '"urn:uuid:550e8400-e29b-41d4-a716-446655440000"',
    ],
)
def test_uuid_forms(payload: str) -> None:
    assert stored("UUID", payload) == "550e8400-e29b-41d4-a716-446655440000"


def test_uuid_errors() -> None:
    for bad in (
        '"550e8400-e29b-41d4-a716-44665544000"',
        '"{550e8400-e29b-41d4-a716-446655440000"',
        '"g50e8400-e29b-41d4-a716-446655440000"',
        '""',
        '" 550e8400-e29b-41d4-a716-446655440000"',
    ):
        assert errors("UUID", bad) == [M10], bad
    assert errors("UUID", "1") == [m3("1", "number", "UUID")]


# --- dates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_sql", "payload", "expected"),
    [
        ("Date", '"2024-01-15T23:59:59-05:00"', "2024-01-16"),  # the UTC date of the instant
        ("Date", "1705314600", "2024-01-15"),
        ("Date", "1705314600123", "2024-01-15"),  # milliseconds
        ("Date32", '"1900-01-01"', "1900-01-01"),
        ("Date32", '"2299-12-31"', "2299-12-31"),
        ("Date32", "-2208988800", "1900-01-01"),
        ("DateTime", '"2024-01-15T10:30:00.999Z"', 1705314600),  # fraction dropped
        ("DateTime", '"2024-01-15 19:30:00+09:00"', 1705314600),
        ("DateTime('Asia/Tokyo')", '"2024-01-15 10:30:00"', 1705314600),  # naive = UTC
        ("DateTime", "0", 0),
        ("DateTime", "4294967295", 4294967295),
        ("DateTime", "4294967296", 4294967),  # out of range as seconds → milliseconds
        ("DateTime", "1705314600123", 1705314600),
        ("DateTime", "1705314600.9", 1705314600),
        ("DateTime64(9)", '"2024-01-15T10:30:00.123456789Z"', Decimal("1705314600.123456789")),
        ("DateTime64(6)", '"2024-01-15T10:30:00.123456789Z"', Decimal("1705314600.123456")),
        ("DateTime64(3)", '"2022-10-27T11:43:02.099Z"', Decimal("1666870982.099")),
        ("DateTime64(3, 'Asia/Tokyo')", '"2024-01-15T19:30:00+09:00"', Decimal("1705314600.000")),
        ("DateTime64(0)", '"2024-01-15T10:30:00.5Z"', 1705314600),
        ("DateTime64(9)", "1705314600.123456789", Decimal("1705314600.123456789")),
        ("DateTime64(9)", "1705314600123.456789", Decimal("1705314600.123456789")),
        ("DateTime64(3)", "1705314600123", Decimal("1705314600.123")),
        ("DateTime64(3)", "-2208988800", Decimal("-2208988800.000")),
        ("DateTime64(3)", "-0.0005", Decimal("-0.001")),  # floor
        ("DateTime64(9)", "9223372036.854775807", Decimal("9223372036.854775807")),
        ("Nullable(DateTime)", '"2024-01-15"', 1705276800),
    ],
)
def test_dates(type_sql: str, payload: str, expected: object) -> None:
    assert stored(type_sql, payload) == expected


@pytest.mark.parametrize(
    ("type_sql", "payload", "value", "lo", "hi"),
    [
        ("Date", '"1969-12-31"', "1969-12-31", "1970-01-01", "2149-06-06"),
        ("Date", '"2149-06-07"', "2149-06-07", "1970-01-01", "2149-06-06"),
        ("Date", "-1", "-1", "1970-01-01", "2149-06-06"),
        ("Date32", '"1899-12-31"', "1899-12-31", "1900-01-01", "2299-12-31"),
        (
            "DateTime",
            '"2106-02-07 06:28:16"',
            "2106-02-07 06:28:16",
            "1970-01-01 00:00:00",
            "2106-02-07 06:28:15",
        ),
        ("DateTime", "-1", "-1", "1970-01-01 00:00:00", "2106-02-07 06:28:15"),
        ("DateTime", "1e30", "1E+30", "1970-01-01 00:00:00", "2106-02-07 06:28:15"),
        ("DateTime64(3)", '"2300-01-01"', "2300-01-01", "1900-01-01 00:00:00.000", "2299-12-31 23:59:59.999"),
        (
            "DateTime64(9)",
            '"2262-04-11T23:47:16.854775808Z"',
            "2262-04-11T23:47:16.854775808Z",
            "1900-01-01 00:00:00.000000000",
            "2262-04-11 23:47:16.854775807",
        ),
    ],
)
def test_date_out_of_range(type_sql: str, payload: str, value: str, lo: str, hi: str) -> None:
    assert errors(type_sql, payload) == [m4(value, type_sql, lo, hi)]


@pytest.mark.parametrize("payload", ['"Jan 15 2024"', '"10:30:00"', '"1/15/2024"', '""', '"2024-02-30"'])
@pytest.mark.parametrize("type_sql", ["Date", "Date32", "DateTime", "DateTime64(3)"])
def test_date_unparsable(type_sql: str, payload: str) -> None:
    assert errors(type_sql, payload) == [M6]


def test_date_wrong_json_type() -> None:
    assert errors("DateTime", "true") == [m3("true", "boolean", "DateTime")]
    assert errors("Nullable(DateTime)", "[1]") == [m3("[1]", "array", "Nullable(DateTime)")]


@pytest.mark.parametrize(
    "type_sql", ["Nullable(Date)", "Nullable(DateTime64(3))", "LowCardinality(Nullable(DateTime))"]
)
def test_nullable_date_errors_become_null(type_sql: str) -> None:
    assert stored(type_sql, '"garbage"') is None
    assert stored(type_sql, '"1800-01-01"') is None
    assert stored(type_sql, "-99999999999999") is None


# --- arrays, maps, JSON -----------------------------------------------------------------------------


def test_arrays() -> None:
    assert stored("Array(String)", '["a", "b"]') == ["a", "b"]
    assert stored("Array(Int32)", '[1, "2", true]') == [1, 2, 1]
    assert stored("Array(Nullable(String))", '["a", null]') == ["a", None]
    assert stored("Array(Array(UInt8))", "[[1], [], [2, 3]]") == [[1], [], [2, 3]]
    assert stored("Array(DateTime)", '["2024-01-15 10:30:00"]') == [1705314600]
    assert errors("Array(String)", '"a"') == [m3("a", "string", "Array(String)")]
    assert errors("Array(String)", '{"a": 1}') == [m3('{"a":1}', "object", "Array(String)")]
    assert errors("Array(String)", '["a", null]') == [M2]
    assert errors("Array(String)", '["a", 1]') == [m3("1", "number", "String")]
    assert errors("Array(Int8)", "[1, 300]") == [m4("300", "Int8", "-128", "127")]
    assert errors("Array(Nullable(String))", '["a", 1]') == [m3("1", "number", "Nullable(String)")]


def test_array_nullable_number_bad_element_is_null() -> None:
    assert stored("Array(Nullable(Int8))", '[1, 300, "x", 1.5, null]') == [1, None, None, None, None]
    assert stored("Array(Nullable(Float64))", '[1.5, "x"]') == [Decimal("1.5"), None]
    assert stored("Array(Nullable(Decimal(5, 2)))", '[1.5, "x", 1e9]') == ["1.50", None, None]
    assert stored("Array(Nullable(DateTime))", '["2024-01-15 10:30:00", "bad", -5]') == [
        1705314600,
        None,
        None,
    ]
    # a wrong JSON type in a Nullable date element still quarantines
    assert errors("Array(Nullable(DateTime))", "[true]") == [m3("true", "boolean", "Nullable(DateTime)")]


def test_maps() -> None:
    assert stored("Map(String, String)", '{"a": "x", "b": "y"}') == {"a": "x", "b": "y"}
    assert stored("Map(String, Int64)", '{"a": 1, "b": "2"}') == {"a": 1, "b": 2}
    assert stored("Map(Int32, String)", '{"1": "x", "-5": "y"}') == {"1": "x", "-5": "y"}
    assert stored("Map(UUID, UInt8)", '{"550E8400E29B41D4A716446655440000": 1}') == {
        "550e8400-e29b-41d4-a716-446655440000": 1
    }
    assert stored("Map(Date, String)", '{"2024-01-15T10:00:00Z": "x"}') == {"2024-01-15": "x"}
    assert stored("Map(DateTime, String)", '{"1970-01-01 00:01:39": "x"}') == {"0000000099": "x"}
    assert stored("Map(DateTime64(3), String)", '{"2024-01-15T10:30:00.5Z": "x"}') == {"1705314600.500": "x"}
    assert stored("Map(String, Nullable(String))", '{"a": null}') == {"a": None}
    assert stored("Map(String, Array(String))", '{"a": ["x"]}') == {"a": ["x"]}
    assert stored("Map(LowCardinality(String), String)", "{}") == {}
    assert errors("Map(String, String)", '["a"]') == [m3('["a"]', "array", "Map(String, String)")]
    assert errors("Map(String, String)", '{"a": null}') == [M2]
    assert errors("Map(String, String)", '{"a": 1}') == [m3("1", "number", "String")]
    assert errors("Map(Int8, String)", '{"x": "y"}') == [m3("x", "string", "Int8")]
    assert errors("Map(UInt8, String)", '{"256": "y"}') == [m4("256", "UInt8", "0", "255")]


def test_json_type() -> None:
    assert stored("JSON", '{"a": {"b": [1, 2.50]}}') == {"a": {"b": [1, Decimal("2.50")]}}
    for payload, value, jtype in (("[1]", "[1]", "array"), ('"x"', "x", "string"), ("1", "1", "number")):
        assert errors("JSON", payload) == [m3(value, jtype, "JSON")]
