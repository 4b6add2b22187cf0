from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from birdhouse.schema.types import (
    _ALIASES,
    _CANONICAL,
    ChType,
    TypeParseError,
    UnsupportedType,
    check_ingestible,
    int_range,
    parse_type,
    parse_type_prefix,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("DateTime64(3,'UTC')", "DateTime64(3, 'UTC')"),
        ("Map(String,Array(Nullable(Int32)))", "Map(String, Array(Nullable(Int32)))"),
        ("Decimal( 10 , 2 )", "Decimal(10, 2)"),
        ("Boolean", "Bool"),
        ("BOOLEAN", "Bool"),
        ("INT", "Int32"),
        ("BIGINT", "Int64"),
        ("TEXT", "String"),
        ("VARCHAR(255)", "String"),
        ("double", "Float64"),
        ("LowCardinality(Nullable(String))", "LowCardinality(Nullable(String))"),
        ("DateTime('Europe/Madrid')", "DateTime('Europe/Madrid')"),
        ("Enum8('a' = 1, 'b' = 2)", "Enum8('a' = 1, 'b' = 2)"),
        ("FixedString(16)", "FixedString(16)"),
        ("Decimal128(4)", "Decimal128(4)"),
        ("Tuple()", "Tuple"),
    ],
)
def test_canonical_sql(text: str, canonical: str) -> None:
    assert parse_type(text).sql() == canonical
    assert str(parse_type(canonical)) == canonical


def test_tree_shape() -> None:
    t = parse_type("Map(String, Array(Nullable(Int32)))")
    assert t == ChType("Map", (ChType("String"), ChType("Array", (ChType("Nullable", (ChType("Int32"),)),))))
    assert parse_type("DateTime64(3, 'UTC')").args == (3, "UTC")


def test_string_args_are_requoted_safely() -> None:
    t = parse_type(r"DateTime('a\'b')")
    assert t.args == ("a'b",)
    assert t.sql() == r"DateTime('a\'b')"
    assert parse_type("Enum8('it''s' = 1)").args == ("it's", 1)
    assert ChType("DateTime", ("x') ENGINE=Log; --",)).sql() == r"DateTime('x\') ENGINE=Log; --')"


def test_nullable_and_unwrap() -> None:
    assert parse_type("Nullable(Int8)").is_nullable
    assert parse_type("LowCardinality(Nullable(String))").is_nullable
    assert not parse_type("LowCardinality(String)").is_nullable
    assert not parse_type("Array(Nullable(String))").is_nullable
    assert parse_type("LowCardinality(Nullable(String))").unwrap() == ChType("String")
    assert parse_type("Array(Nullable(String))").unwrap().name == "Array"
    assert parse_type("Array(Int8)").inner == ChType("Int8")
    with pytest.raises(TypeError, match="has no inner type"):
        _ = parse_type("Int8").inner


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Invalid type: it is empty"),
        ("   ", "Invalid type: it is empty"),
        ("Array(", "unexpected end"),
        ("Array(Int8", "unexpected end"),
        ("Array(Int8))", "unexpected ')'"),
        ("Map(String String)", "expected ',' or ')', got 'String'"),
        ("(Int8)", "expected a type name, got '('"),
        ("Int8; DROP TABLE x", "unexpected '; DROP TABLE x'"),
        ("Enum8('a' = 'b')", "expected an integer after '='"),
        ("Array(" * 40 + "Int8" + ")" * 40, "nesting too deep"),
        ("DateTime('UTC", "unterminated string literal"),
        ("Array(Int8 $)", "unexpected character '$'"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(TypeParseError) as info:
        parse_type(text)
    assert message in str(info.value)


def test_parse_type_prefix_stops_after_the_type() -> None:
    text = "x Map(String, Int8) DEFAULT map()"
    t, end = parse_type_prefix(text, 2)
    assert t.sql() == "Map(String, Int8)"
    assert text[end:] == " DEFAULT map()"


@pytest.mark.parametrize(
    "text",
    [
        "Int8", "Int256", "UInt8", "UInt256", "Float32", "Float64", "Decimal(76, 76)", "Decimal(1)",
        "Decimal32(9)", "Decimal256(0)", "String", "FixedString(1)", "UUID", "Date", "Date32", "DateTime",
        "DateTime('UTC')", "DateTime64(0)", "DateTime64(9, 'America/New_York')", "Bool",
        "Array(Array(String))",
        "Map(String, Array(Nullable(Int32)))", "Map(LowCardinality(String), String)", "Map(UInt64, Bool)",
        "LowCardinality(String)", "LowCardinality(Nullable(String))", "LowCardinality(UInt64)",
        "LowCardinality(FixedString(2))", "Nullable(DateTime64(3))", "JSON", "Array(Nullable(Float32))",
    ],
)  # fmt: skip
def test_ingestible_types(text: str) -> None:
    check_ingestible(parse_type(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Enum8('a' = 1)", "Unsupported type: Enum8('a' = 1)"),
        ("Tuple(String, Int8)", "Unsupported type: Tuple(String, Int8)"),
        ("IPv4", "Unsupported type: IPv4"),
        ("Array(IPv6)", "Unsupported type: IPv6"),
        ("AggregateFunction(count)", "Unsupported type: AggregateFunction(count)"),
        ("FixedString(0)", "Invalid type FixedString(0): FixedString needs one length N > 0"),
        ("FixedString", "FixedString needs one length N > 0"),
        ("DateTime64(10)", "DateTime64 needs a precision between 0 and 9"),
        ("DateTime64", "DateTime64 needs a precision between 0 and 9"),
        ("DateTime64(3, 4)", "the DateTime64 timezone must be a string"),
        ("DateTime(3)", "DateTime takes only an optional timezone"),
        ("DateTime('Not a zone!')", "the timezone is not a valid time zone name"),
        ("Decimal(77, 2)", "Decimal precision must be 1–76 and scale 0–precision"),
        ("Decimal(10, 11)", "Decimal precision must be 1–76 and scale 0–precision"),
        ("Decimal('a')", "Decimal needs a precision and an optional scale"),
        ("Decimal32(10)", "Decimal32 needs one scale between 0 and 9"),
        ("Int8(3)", "Int8 takes no parameters"),
        ("Nullable(Array(Int8))", "Nullable cannot wrap Array"),
        ("Nullable(Nullable(Int8))", "Nullable cannot wrap Nullable"),
        ("Nullable(Map(String, String))", "Nullable cannot wrap Map"),
        ("Nullable(LowCardinality(String))", "Nullable cannot wrap LowCardinality"),
        ("Nullable(Int8, Int8)", "Nullable needs exactly one type argument"),
        ("LowCardinality(Array(String))", "LowCardinality only wraps"),
        ("LowCardinality(UUID)", "LowCardinality only wraps"),
        ("LowCardinality(DateTime64(3))", "LowCardinality only wraps"),
        ("Map(Float64, String)", "Float64 cannot be a Map key"),
        ("Map(Nullable(String), String)", "Nullable(String) cannot be a Map key"),
        ("Map(Array(String), String)", "Array(String) cannot be a Map key"),
        ("Map(String)", "Map needs a key type and a value type"),
        ("Array(FixedString(0))", "FixedString needs one length N > 0"),
    ],
)
def test_not_ingestible(text: str, message: str) -> None:
    with pytest.raises(UnsupportedType) as info:
        check_ingestible(parse_type(text))
    assert message in str(info.value)


def test_json_behind_flag() -> None:
    check_ingestible(parse_type("JSON"), allow_json=True)
    with pytest.raises(UnsupportedType, match="Unsupported type: JSON"):
        check_ingestible(parse_type("Array(JSON)"), allow_json=False)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Int8", (-128, 127)),
        ("UInt8", (0, 255)),
        ("Int64", (-(2**63), 2**63 - 1)),
        ("UInt64", (0, 2**64 - 1)),
        ("Int256", (-(2**255), 2**255 - 1)),
        ("UInt256", (0, 2**256 - 1)),
    ],
)
def test_int_range(name: str, expected: tuple[int, int]) -> None:
    assert int_range(name) == expected


def test_int_range_rejects_non_integers() -> None:
    with pytest.raises(ValueError, match="'Float32' is not an integer type"):
        int_range("Float32")


# --- Hypothesis ---------------------------------------------------------------------------

_INT_NAMES = [f"{s}Int{b}" for s in ("", "U") for b in (8, 16, 32, 64, 128, 256)]
_OTHER_SCALARS = ["Float32", "Float64", "String", "UUID", "Date", "Date32", "Bool"]
_TZ = st.sampled_from(["UTC", "Europe/Madrid", "America/New_York", "Etc/GMT+3"])


@st.composite
def _decimal(draw: st.DrawFn) -> ChType:
    p = draw(st.integers(1, 76))
    return ChType("Decimal", (p, draw(st.integers(0, p))))


_SCALAR = st.one_of(
    st.sampled_from([ChType(n) for n in [*_INT_NAMES, *_OTHER_SCALARS]]),
    st.builds(lambda n: ChType("FixedString", (n,)), st.integers(1, 1000)),
    st.builds(lambda tz: ChType("DateTime", (tz,)), _TZ),
    st.builds(lambda p: ChType("DateTime64", (p,)), st.integers(0, 9)),
    st.builds(lambda p, tz: ChType("DateTime64", (p, tz)), st.integers(0, 9), _TZ),
    _decimal(),
    st.builds(lambda s: ChType("Decimal64", (s,)), st.integers(0, 18)),
)
_LC_BASE = st.sampled_from([ChType("String"), ChType("UInt64"), ChType("Date"), ChType("FixedString", (8,))])
_LEAF = st.one_of(
    _SCALAR,
    st.builds(lambda t: ChType("Nullable", (t,)), _SCALAR),
    st.builds(lambda t: ChType("LowCardinality", (t,)), _LC_BASE),
    st.builds(lambda t: ChType("LowCardinality", (ChType("Nullable", (t,)),)), _LC_BASE),
)
_MAP_KEY = st.sampled_from([ChType("String"), ChType("UInt32"), ChType("LowCardinality", (ChType("String"),))])
INGESTIBLE = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.builds(lambda t: ChType("Array", (t,)), inner),
        st.builds(lambda k, v: ChType("Map", (k, v)), _MAP_KEY, inner),
    ),
    max_leaves=6,
)


@given(INGESTIBLE)
def test_ingestible_round_trip(t: ChType) -> None:
    check_ingestible(t)
    assert parse_type(t.sql()) == t
    assert parse_type(t.sql()).sql() == t.sql()


_NAMES = st.from_regex(r"[A-Z][A-Za-z0-9_]{0,10}", fullmatch=True)
_ARG_LEAF = st.one_of(st.integers(-(10**20), 10**20), st.text(max_size=10))
_ANY_TYPE = st.recursive(
    _NAMES.map(ChType),
    lambda inner: st.builds(
        lambda n, a: ChType(n, tuple(a)),
        _NAMES,
        st.lists(st.one_of(inner, _ARG_LEAF), min_size=1, max_size=4),
    ),
    max_leaves=8,
)


@given(_ANY_TYPE)
def test_any_tree_round_trips(t: ChType) -> None:
    def names(node: ChType) -> list[str]:
        return [node.name, *(n for a in node.args if isinstance(a, ChType) for n in names(a))]

    assume(all(n in _CANONICAL or n.lower() not in _ALIASES for n in names(t)))
    assert parse_type(t.sql()) == t
