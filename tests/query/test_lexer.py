"""The ClickHouse lexer: token boundaries must match the engine's rules exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from birdhouse.query.lexer import Token, TokenKind, tokenize


def significant(sql: str) -> list[tuple[TokenKind, str]]:
    return [(t.kind, t.text) for t in tokenize(sql) if t.significant]


def kinds(sql: str) -> list[TokenKind]:
    return [kind for kind, _ in significant(sql)]


@given(st.text())
def test_tokens_cover_the_input_exactly(sql: str) -> None:
    tokens = tokenize(sql)
    assert "".join(t.text for t in tokens) == sql
    assert all(t.text for t in tokens)
    assert [t.start for t in tokens] == [sum(len(u.text) for u in tokens[:i]) for i in range(len(tokens))]


@pytest.mark.parametrize(
    ("sql", "text"),
    [
        ("'a;b'", "'a;b'"),
        ("'it''s; x'", "'it''s; x'"),
        (r"'a\';b'", r"'a\';b'"),
        (r"'a\\'", r"'a\\'"),
        ("x'4142'", "x'4142'"),
        ("b'0101'", "b'0101'"),
    ],
)
def test_string_literals_keep_semicolons_inside(sql: str, text: str) -> None:
    assert significant(sql + " ; ") == [(TokenKind.STRING, text), (TokenKind.SEMICOLON, ";")]


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("`a;b`", TokenKind.QUOTED_IDENTIFIER),
        ('"a;b"', TokenKind.QUOTED_IDENTIFIER),
        ('"a"";b"', TokenKind.QUOTED_IDENTIFIER),
        ("\u2018a;'b\u2019", TokenKind.UNICODE_STRING),
        ("\u201ca;`b\u201d", TokenKind.UNICODE_IDENTIFIER),
        ("$$a;'b$$", TokenKind.HEREDOC),
        ("$tag$a;$$b$tag$", TokenKind.HEREDOC),
    ],
)
def test_quoted_tokens(sql: str, kind: TokenKind) -> None:
    assert significant(sql) == [(kind, sql)]


@pytest.mark.parametrize(
    "comment",
    [
        "-- x; DROP TABLE t",
        "// x; DROP TABLE t",
        "# x; DROP TABLE t",
        "#! x; DROP TABLE t",
        "/* x; DROP TABLE t */",
        "/* a /* nested; */ still; comment */",
    ],
)
def test_comments_hide_what_they_contain(comment: str) -> None:
    tokens = tokenize("SELECT 1 " + comment + "\n")
    assert [t.kind for t in tokens if t.kind is TokenKind.COMMENT] == [TokenKind.COMMENT]
    assert TokenKind.SEMICOLON not in [t.kind for t in tokens]


def test_nested_comment_is_closed_only_at_its_own_end() -> None:
    # A non-nesting lexer would end the comment at the first */ and see `; DROP`.
    assert kinds("/* a /* b */ ; DROP TABLE x */ SELECT 1") == [TokenKind.BARE_WORD, TokenKind.NUMBER]


def test_line_comment_ends_only_at_newline() -> None:
    assert kinds("SELECT 1 -- a\r; b\nFROM t") == [TokenKind.BARE_WORD, TokenKind.NUMBER] + [TokenKind.BARE_WORD] * 2


def test_hash_without_space_is_an_error_not_a_comment() -> None:
    assert TokenKind.ERROR in kinds("SELECT 1 #x")


@pytest.mark.parametrize(
    "sql", ["'open", '"open', "`open", "/* open", "\u2018open", "x'zz'", "!", "\\x", "SELECT 1 \u00e9"]
)
def test_unterminated_or_unknown_input_is_an_error_token(sql: str) -> None:
    assert TokenKind.ERROR in kinds(sql)


def test_vertical_delimiter() -> None:
    assert kinds("SELECT 1 \\G") == [TokenKind.BARE_WORD, TokenKind.NUMBER, TokenKind.VERTICAL_DELIMITER]


def test_heredoc_tag_must_be_a_word() -> None:
    # `$a b$` is not a heredoc tag, so the `;` is a real separator.
    assert TokenKind.SEMICOLON in kinds("$a b$ ; $a b$")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("1.5e-3", [(TokenKind.NUMBER, "1.5e-3")]),
        ("0x1F", [(TokenKind.NUMBER, "0x1F")]),
        ("1_000", [(TokenKind.NUMBER, "1_000")]),
        (".5", [(TokenKind.NUMBER, ".5")]),
        ("1abc", [(TokenKind.BARE_WORD, "1abc")]),
        ("t.1.2", [(TokenKind.BARE_WORD, "t"), (TokenKind.PUNCTUATION, "."), (TokenKind.NUMBER, "1"),
                   (TokenKind.PUNCTUATION, "."), (TokenKind.NUMBER, "2")]),
        ("a->b", [(TokenKind.BARE_WORD, "a"), (TokenKind.PUNCTUATION, "->"), (TokenKind.BARE_WORD, "b")]),
        ("a<=>b", [(TokenKind.BARE_WORD, "a"), (TokenKind.PUNCTUATION, "<=>"), (TokenKind.BARE_WORD, "b")]),
        ("a::Int8", [(TokenKind.BARE_WORD, "a"), (TokenKind.PUNCTUATION, "::"),
                     (TokenKind.BARE_WORD, "Int8")]),
        ("$x", [(TokenKind.BARE_WORD, "$x")]),
    ],
)  # fmt: skip
def test_numbers_words_and_operators(sql: str, expected: list[tuple[TokenKind, str]]) -> None:
    assert significant(sql) == expected


def test_unicode_whitespace_and_minus() -> None:
    tokens = tokenize("1\u00a0\u22121")
    assert [t.kind for t in tokens] == [
        TokenKind.NUMBER,
        TokenKind.WHITESPACE,
        TokenKind.PUNCTUATION,
        TokenKind.NUMBER,
    ]


def test_token_helpers() -> None:
    token = Token(TokenKind.BARE_WORD, "select", 0)
    assert token.is_word("SELECT")
    assert token.is_identifier
    assert token.significant
    assert not Token(TokenKind.COMMENT, "-- x", 0).significant
    assert Token(TokenKind.PUNCTUATION, "(", 0).is_punct("(")
