from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birdhouse.schema.columns import (
    Column,
    SchemaError,
    is_json_typed,
    parse_schema,
    split_schema,
    validate_column,
    validate_columns,
)
from birdhouse.schema.types import ChType

from .test_schema_types import INGESTIBLE


def one(text: str) -> Column:
    columns = parse_schema(text)
    assert len(columns) == 1
    return columns[0]


# Every example SPEC §4.1 says MUST parse.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timestamp DateTime `json:$.timestamp`", Column("timestamp", "DateTime", "$.timestamp")),
        (
            "a2 Float32 CODEC(Delta, ZSTD(4)) `json:$.a2`",
            Column("a2", "Float32", "$.a2", codec="Delta, ZSTD(4)"),
        ),
        ("c Nullable(Float32) DEFAULT NULL", Column("c", "Nullable(Float32)")),
        ("arr Array(String) DEFAULT ['-']", Column("arr", "Array(String)", None, "DEFAULT", "['-']")),
        ("c LowCardinality(Nullable(String))", Column("c", "LowCardinality(Nullable(String))")),
        ("`foo.bar` UInt64", Column("foo.bar", "UInt64")),
        ("data String `json:$`", Column("data", "String", "$")),
        (
            "messages Array(Map(String, String)) `json:$.messages[:]` DEFAULT []",
            Column("messages", "Array(Map(String, String))", "$.messages[:]", "DEFAULT", "[]"),
        ),
    ],
)
def test_spec_examples(text: str, expected: Column) -> None:
    assert one(text) == expected


def test_column_properties_and_sql() -> None:
    c = one("`foo.bar` LowCardinality(Nullable(String)) DEFAULT 'x' CODEC(ZSTD(1)) `json:$.foo.bar`")
    assert c.nullable
    assert c.ch_type == ChType("LowCardinality", (ChType("Nullable", (ChType("String"),)),))
    assert c.stored
    assert c.sql() == "`foo.bar` LowCardinality(Nullable(String)) DEFAULT 'x' CODEC(ZSTD(1))"
    assert c.schema_sql() == c.sql() + " `json:$.foo.bar`"
    assert not one("x Int8 MATERIALIZED 1").stored
    assert not one("x Int8 ALIAS 1").stored
    assert not one("x Int8").nullable


def test_msgspec_round_trip() -> None:
    c = one("x Nullable(Int8) DEFAULT 1 `json:$.x`")
    raw = msgspec.json.encode(c)
    assert msgspec.json.decode(raw, type=Column) == c
    with pytest.raises(AttributeError):
        c.name = "y"  # type: ignore[misc]


def test_types_are_canonicalised() -> None:
    assert one("a BOOLEAN").type == "Bool"
    assert one("a DateTime64(3,'UTC')").type == "DateTime64(3, 'UTC')"
    assert one("a Map(String,Array(Nullable(Int32)))").type == "Map(String, Array(Nullable(Int32)))"


def test_separators_comments_and_index_lines() -> None:
    text = """
        `a` Int32,   -- the first column
        b String DEFAULT 'x,y -- not a comment',
        INDEX idx_a a TYPE minmax GRANULARITY 1,
        c Map(String,
              String)
        d Array(String) DEFAULT ['a', 'b'],
        e String `json:$.['k,1']` DEFAULT ''
    """
    cols = parse_schema(text.replace("`json:$.['k,1']` DEFAULT ''", "DEFAULT ''"))
    assert [c.name for c in cols] == ["a", "b", "c", "d", "e"]
    assert cols[1].default_expr == "'x,y -- not a comment'"
    assert cols[2].type == "Map(String, String)"
    assert split_schema("a Int8 `json:$.['k,1']`, b Int8") == ["a Int8 `json:$.['k,1']`", "b Int8"]
    assert parse_schema("a Int8, b Int8") == parse_schema("a Int8\nb Int8,\n")


def test_json_annotation_position_is_free() -> None:
    a = one("x Int32 `json:$.x` DEFAULT 1 CODEC(ZSTD(1))")
    b = one("x Int32 DEFAULT 1 `json:$.x` CODEC(ZSTD(1))")
    c = one("x Int32 DEFAULT 1 CODEC(ZSTD(1)) `json:$.x`")
    assert a == b == c
    assert a.default_expr == "1"
    assert a.codec == "ZSTD(1)"


def test_default_expressions_keep_their_text() -> None:
    assert one("t DateTime DEFAULT now() `json:$.t`").default_expr == "now()"
    assert one("t Int32 DEFAULT if(1 > 0, 1, 2)").default_expr == "if(1 > 0, 1, 2)"
    assert one("t Int32 MATERIALIZED length(s)").default_kind == "MATERIALIZED"
    assert one("n Nullable(Int8) DEFAULT 5").default_expr == "5"
    assert one("n Int8 DEFAULT NULL").default_expr == "NULL"


def test_is_json_typed() -> None:
    assert is_json_typed(parse_schema("a Int8 `json:$.a`, b Nullable(Int8)"))
    assert not is_json_typed(parse_schema("a Int8, b Int8"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a Int32, a String", "Duplicated column name 'a'"),
        ("1a Int32", "Invalid column name '1a': it must not start with a digit"),
        ("index Int32", "Invalid column name 'index': it is a reserved word"),
        ("`a;DROP TABLE x` Int32", "Invalid column name 'a;DROP TABLE x'"),
        ("`a` b` Int32", "Invalid column 'a': Unsupported type: b"),
        ("`unterminated Int32", "unterminated backtick"),
        ("a", "Invalid column 'a': missing type"),
        ("a Foo", "Invalid column 'a': Unsupported type: Foo"),
        ("a Array(", "Invalid column 'a': Invalid type"),
        ("a FixedString(0)", "FixedString needs one length N > 0"),
        ("a Int32 `json:x`", "Invalid JSONPath x"),
        ("a Int32 `json:$.a[0]`", "Invalid JSONPath $.a[0]"),
        ('a Int32 `json:$.["a"]`', 'Invalid JSONPath $.["a"]: keys in brackets should be single quoted'),
        ("a Array(Int8) `json:$.a[:].b[:]`", "Nested arrays are not supported. Found 2 levels of nesting."),
        (
            "a Int32 MATERIALIZED 1 `json:$.a`",
            "Invalid column 'a': MATERIALIZED columns cannot have a json path",
        ),
        ("a Int32 ALIAS 1 `json:$.a`", "ALIAS columns cannot have a json path"),
        ("a Int32 `json:$.a`, b Int32", "Column 'b' has no json path, so it is never read from the body"),
        ("a Int32 `json:$.a` `json:$.b`", "more than one json path"),
        ("a Int32 DEFAULT 1 MATERIALIZED 2", "more than one of DEFAULT, MATERIALIZED, ALIAS"),
        ("a Int32 CODEC(LZ4) CODEC(LZ4)", "more than one CODEC"),
        ("a Int32 CODEC(LZ4", "unbalanced CODEC(...)"),
        ("a Int32 DEFAULT", "DEFAULT needs an expression"),
        ("a Int32 foo", "Invalid column 'a': unexpected 'foo'"),
        ("a Int32 DEFAULT 1;DROP TABLE x", "';' is not allowed"),
        ("a Int32 DEFAULT 1) ENGINE=Log; DROP TABLE x", "unbalanced ')'"),
        ("a Int32 DEFAULT (1", "unbalanced '('"),
        ("a Int32 DEFAULT (SELECT 1)", "'SELECT' is not allowed in an expression"),
        ("a Int32 DEFAULT 1 SETTINGS x=1", "'SETTINGS' is not allowed"),
        ("a Int32 DEFAULT 1 /* c */", "comments are not allowed"),
        ("a Int32 CODEC(ZSTD(1)); DROP TABLE x", "Invalid column 'a': unexpected ';'"),
        ("a String DEFAULT 'x", "unterminated quote"),
        ("-- only a comment", "Invalid schema: it has no columns"),
        ("", "Invalid schema: it has no columns"),
        ("`" + "x" * 300 + "` Int8", "it is 300 characters long, the maximum is 255"),
    ],
)
def test_schema_errors(text: str, message: str) -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(text)
    assert message in str(info.value)


def test_json_typed_rule_accepts_defaults_and_nullables() -> None:
    cols = parse_schema(
        "a Int32 `json:$.a`, b Nullable(Int32), c Int32 DEFAULT 0, d Int32 MATERIALIZED a + 1, e Int32 ALIAS a"
    )
    assert [c.jsonpath for c in cols] == ["$.a", None, None, None, None]


def test_check_types_off_admits_aggregate_states() -> None:
    cols = parse_schema("k String, n AggregateFunction(count)", check_types=False)
    assert cols[1].type == "AggregateFunction(count)"
    with pytest.raises(SchemaError, match="Unsupported type: AggregateFunction"):
        parse_schema("k String, n AggregateFunction(count)")


def test_validate_column_rechecks_direct_construction() -> None:
    assert validate_column(Column("a", "BOOLEAN")).type == "Bool"
    with pytest.raises(SchemaError, match="Invalid column 'a;b'"):
        validate_column(Column("a;b", "Int8"))
    with pytest.raises(SchemaError, match="unknown default kind 'EPHEMERAL'"):
        validate_column(Column("a", "Int8", default_kind="EPHEMERAL", default_expr="1"))
    with pytest.raises(SchemaError, match="default_expr given without default_kind"):
        validate_column(Column("a", "Int8", default_expr="1"))
    with pytest.raises(SchemaError, match="a top-level ',' is not allowed"):
        validate_column(Column("a", "Int8", default_kind="DEFAULT", default_expr="1, evil String"))
    with pytest.raises(SchemaError, match="Duplicated column name 'a'"):
        validate_columns([Column("a", "Int8"), Column("a", "Int8")])


def test_sql_refuses_unvalidated_names() -> None:
    with pytest.raises(ValueError, match="Refusing to quote"):
        Column("a` Int8) ENGINE=Log; --", "Int8").sql()


# --- Hypothesis: render → parse is the identity ------------------------------------------------

_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True).filter(lambda n: n.lower() != "index")
_PATH = st.sampled_from(["$.a", "$.a.b", "$.['x.y']", "$.arr[:]", "$.arr[:].id", "$.['a-b'][:].c", "$"])
_EXPR = st.sampled_from(["0", "''", "now()", "[]", "'a,b'", "1 + 2", "'--'", "map()", "toDate('2020-01-01')"])
_CODEC = st.sampled_from(["ZSTD(1)", "Delta, ZSTD(4)", "LZ4", "T64, LZ4"])


@st.composite
def columns(draw: st.DrawFn, json_typed: bool | None = None) -> list[Column]:
    names = draw(st.lists(_NAME, min_size=1, max_size=8, unique=True))
    typed = draw(st.booleans()) if json_typed is None else json_typed
    out: list[Column] = []
    for name in names:
        ch_type = draw(INGESTIBLE)
        kind = draw(st.sampled_from([None, None, "DEFAULT", "MATERIALIZED", "ALIAS"]))
        path = draw(st.one_of(st.none(), _PATH)) if typed and kind in (None, "DEFAULT") else None
        if typed and path is None and kind is None and not ch_type.is_nullable:
            kind = "DEFAULT"
        expr = draw(_EXPR) if kind else None
        codec = draw(st.one_of(st.none(), _CODEC))
        out.append(Column(name, ch_type.sql(), path, kind, expr, codec))
    return out


@given(columns())
def test_schema_render_parse_round_trip(cols: list[Column]) -> None:
    assert parse_schema(", ".join(c.schema_sql() for c in cols)) == cols
    assert parse_schema("\n".join(f"    {c.schema_sql()}," for c in cols)) == cols
    for c in cols:
        assert validate_column(c) == c
