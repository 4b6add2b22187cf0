from __future__ import annotations

import pytest

from birdhouse.schema.sqltext import SqlTextError, check_expression, tokenize


@pytest.mark.parametrize(
    "expr",
    [
        "now()",
        "''",
        "['-']",
        "[]",
        "toYYYYMM(timestamp)",
        "timestamp + toIntervalDay(60)",
        "'a;b -- not a comment /* nor this */'",
        r"'it\'s'",
        "'it''s'",
        "`weird;name`",
        '"double quoted"',
        "format('{}-{}', a, b)",
        "map('a', 1)",
        "{'a': 1}",
        "CAST(x AS String)",
        "x::Int32",
        "a IN (1, 2, 3)",
        "if(a > 1, 'x', 'y')",
        "1e-3 * 2.5",
        "comment",
        "-1",
    ],
)
def test_accepted_expressions(expr: str) -> None:
    assert check_expression(f"  {expr} ") == expr


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("a;DROP TABLE x", "';' is not allowed"),
        ("1) ENGINE=Log; DROP", "unbalanced ')'"),
        ("(1", "unbalanced '('"),
        ("[1)", "unbalanced ')'"),
        ("1 -- trailing", "comments are not allowed"),
        ("1 # hash", "comments are not allowed"),
        ("1 /* block */", "comments are not allowed"),
        ("1 /* open", "unterminated comment"),
        ("'abc", "unterminated quote"),
        ("`abc", "unterminated quote"),
        ('"abc', "unterminated quote"),
        ("(SELECT 1)", "'SELECT' is not allowed in an expression"),
        ("x FROM t", "'FROM' is not allowed"),
        ("1 SETTINGS max_threads=1", "'SETTINGS' is not allowed"),
        ("1 FORMAT JSON", "'FORMAT' is not allowed"),
        ("1 INTO OUTFILE 'x'", "'INTO' is not allowed"),
        ("insert", "'insert' is not allowed"),
        ("1 CODEC(ZSTD)", "'CODEC' is not allowed"),
        ("1, b String", "a top-level ',' is not allowed here"),
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("x$y", "unexpected character '$'"),
        ("a\x00", "NUL character"),
        ("1" * 10_001, "longer than 10000 characters"),
        ("{x:String}", "query parameters are not allowed"),
    ],
)
def test_rejected_expressions(expr: str, message: str) -> None:
    with pytest.raises(SqlTextError) as info:
        check_expression(expr)
    assert message in str(info.value)


def test_allow_lifts_keywords_and_commas() -> None:
    ttl = "d + INTERVAL 1 DAY DELETE WHERE x = 1, d + INTERVAL 2 DAY"
    assert check_expression(ttl, allow=("delete", "where"), allow_comma=True) == ttl
    with pytest.raises(SqlTextError, match="'DELETE' is not allowed"):
        check_expression(ttl, allow_comma=True)


def test_tokenize_kinds_and_offsets() -> None:
    text = "f('a''b', `c`) + 1"
    toks = tokenize(text)
    assert [t.kind for t in toks] == [
        "ident",
        "punct",
        "string",
        "punct",
        "quoted_ident",
        "punct",
        "op",
        "number",
    ]
    assert all(text[t.start : t.end] == t.text for t in toks)
