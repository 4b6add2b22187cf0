"""Token-level rewriting: canonical text, table positions, CTEs, FORMAT (pure, no engine)."""

from __future__ import annotations

import pytest

import birdhouse.query
from birdhouse.query.errors import SqlRefused
from birdhouse.query.lexer import Token, TokenKind, tokenize
from birdhouse.query.rewrite import cte_definitions, emit, format_clause, table_positions


def canonical(sql: str) -> str:
    return emit(tokenize(sql), frozenset(), {})


def sig(tokens: list[Token]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t.significant]


def test_public_surface() -> None:
    assert set(birdhouse.query.__all__) == {"FORMATS", "GuardedQuery", "SqlRefused", "guard_query"}
    assert birdhouse.query.SqlRefused is SqlRefused


@pytest.mark.parametrize(
    ("sql", "text"),
    [
        ("SELECT 1 -- c;\n", "SELECT 1  \n"),
        ("SELECT 1 /* ; */ + 2", "SELECT 1   + 2"),
        ("SELECT 1-/**/-1", "SELECT 1- -1"),
        ("SELECT 'a;b'", "SELECT 'a\\x3Bb'"),
        ("SELECT 'a\\\\;'", "SELECT 'a\\x5C\\x3B'"),
        ("SELECT 'it''s'", "SELECT 'it''s'"),
        ("SELECT $t$x;'\\$t$", "SELECT 'x\\x3B\\'\\x5C'"),
        ("SELECT \u2018x\u2019", "SELECT 'x'"),
        ("SELECT x\u2018ab\u2019", "SELECT x 'ab'"),
        ('SELECT "a""b"', 'SELECT `a"b`'),
        ("SELECT \u201cn\u201d", "SELECT `n`"),
        ("SELECT 1\u00a0\u2212 1", "SELECT 1  -  1"),
    ],
)
def test_canonical_text(sql: str, text: str) -> None:
    assert canonical(sql) == text


def test_emit_never_produces_a_statement_separator() -> None:
    # Whatever a token claims to be, text with a ';' outside an escape is never emitted.
    forged = [Token(TokenKind.BARE_WORD, "SELECT", 0), Token(TokenKind.BARE_WORD, "1;DROP", 6)]
    with pytest.raises(SqlRefused, match="rewritten safely"):
        emit(forged, frozenset(), {})
    with pytest.raises(SqlRefused):
        emit(tokenize("SELECT 1"), frozenset(), {0: "SELECT 1; DROP TABLE t --"})


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a, b FROM t1 AS x, t2 JOIN t3 ON x.a = t3.a WHERE c IN t4", ["t1", "t2", "t3", "t4"]),
        ("SELECT a, t1 FROM t2", ["t2"]),  # a column after a comma in the select list is not a table
        ("SELECT * FROM t1 JOIN t2 USING a, b", ["t1", "t2"]),
        ("SELECT * FROM t1 ARRAY JOIN arr", ["t1"]),
        ("SELECT * FROM db.t1, f(1), (SELECT 1 FROM t2)", ["t2"]),
        ("SELECT 1 IN (t1), 2 NOT IN t2", ["t1", "t2"]),
        ("DESCRIBE TABLE t1", ["t1"]),
        ("DESC t1", ["t1"]),
        ("FROM t1 SELECT *", ["t1"]),
    ],
)
def test_table_positions(sql: str, expected: list[str]) -> None:
    tokens = tokenize(sql)
    assert [p.name for p in table_positions(tokens, sig(tokens))] == expected


def test_table_position_alias_detection() -> None:
    tokens = tokenize("SELECT * FROM c, d AS x, e y, f FINAL JOIN g ON 1 WHERE 1 IN h")
    found = {p.name: (p.may_alias, p.has_alias) for p in table_positions(tokens, sig(tokens))}
    assert found == {
        "c": (True, False),
        "d": (True, True),
        "e": (True, True),
        "f": (True, False),
        "g": (True, False),
        "h": (False, False),
    }


def test_cte_definitions() -> None:
    sql = "WITH a AS (SELECT 1), b(x) AS (SELECT 2), 3 AS c, d AS MATERIALIZED (SELECT 4) SELECT * FROM a"
    tokens = tokenize(sql)
    assert [c.name for c in cte_definitions(tokens, sig(tokens))] == ["a", "b", "d"]


def test_format_clause() -> None:
    tokens = tokenize("SELECT 1 format `CSV`")
    clause = format_clause(tokens, sig(tokens))
    assert clause is not None
    assert clause[0] == "CSV"
    assert [tokens[i].text for i in clause[1]] == ["format", "`CSV`"]
    no_format = tokenize("SELECT format")
    assert format_clause(no_format, sig(no_format)) is None
