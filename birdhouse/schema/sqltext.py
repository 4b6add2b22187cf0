"""Lexical checks for SQL fragments that end up spliced into DDL.

DEFAULT expressions, CODECs, sorting keys, TTLs come from users (datafiles,
the Data Sources API) and become part of a CREATE TABLE statement. Values
never take this route (DESIGN invariant 6), but these fragments have to. This
module is the first of two gates: it tokenizes ClickHouse SQL lexically and
refuses anything that could end the expression early or smuggle in another
clause (``;``, unbalanced brackets, comments, statement keywords). The second
gate is the engine parsing the resulting CREATE TABLE.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "FORBIDDEN_KEYWORDS",
    "MAX_EXPRESSION_LENGTH",
    "SqlTextError",
    "Token",
    "check_expression",
    "tokenize",
]

MAX_EXPRESSION_LENGTH = 10_000


class SqlTextError(ValueError):
    """A SQL fragment that cannot be spliced safely."""


class Token(NamedTuple):
    kind: str  # ident | quoted_ident | string | number | punct | op | comment | semicolon
    text: str
    start: int
    end: int


# Order matters: comments before operators (`--` vs `-`, `/*` vs `/`).
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<quoted_ident>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
  | (?P<number>[0-9][0-9A-Za-z_.]*|\.[0-9][0-9A-Za-z_]*)
  | (?P<ident>[^\W\d]\w*)
  | (?P<punct>[()\[\]{},])
  | (?P<semicolon>;)
  | (?P<op>\|\||<=|>=|!=|<>|==|->|::|[-+*/%=<>?:.^!~&|])
    """,
    re.VERBOSE | re.DOTALL,
)

# Words that start a statement, or a clause of CREATE TABLE / a column definition.
# None can occur in a scalar expression, so seeing one means the text is trying to
# be more than an expression. Harmless words that are common column names
# (`comment`, `query`, `set`) are deliberately not listed: the engine still parses.
FORBIDDEN_KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "INSERT", "INTO", "SETTINGS", "FORMAT", "DROP", "ALTER", "CREATE",
        "ATTACH", "DETACH", "TRUNCATE", "RENAME", "GRANT", "REVOKE", "UNION", "INTERSECT",
        "ENGINE", "TABLE", "DATABASE", "DICTIONARY", "SYSTEM", "KILL", "OPTIMIZE", "EXCHANGE",
        "DELETE", "UPDATE", "WHERE", "PREWHERE", "GROUP", "HAVING", "LIMIT", "JOIN", "VALUES",
        "OUTFILE", "PARTITION", "ORDER", "PRIMARY", "SAMPLE", "TTL", "CODEC", "MATERIALIZED",
        "ALIAS", "DEFAULT", "INDEX", "PROJECTION", "CONSTRAINT", "CLUSTER",
    }
)  # fmt: skip
# Keywords that are also function names: `format('{}', x)` is a plain call.
_CALLABLE_KEYWORDS = frozenset({"FORMAT", "VALUES"})

_CLOSERS = {")": "(", "]": "[", "}": "{"}


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens (whitespace dropped); raise on anything unlexable."""
    tokens: list[Token] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.lastgroup is None:
            if text[pos] in "'`\"":
                raise SqlTextError(f"Invalid SQL expression: unterminated quote at position {pos}")
            raise SqlTextError(f"Invalid SQL expression: unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup
        if kind == "comment" and text.startswith("/*", pos) and not m.group().endswith("*/"):
            raise SqlTextError("Invalid SQL expression: unterminated comment")
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos, m.end()))
        pos = m.end()
    return tokens


def _is_query_parameter(tokens: list[Token], i: int) -> bool:
    # `{name:Type}` is a query parameter: its value would come from outside the DDL.
    nxt = tokens[i + 1 : i + 3]
    return len(nxt) == 2 and nxt[0].kind == "ident" and nxt[1].text == ":"


def check_expression(text: str, *, allow: Iterable[str] = (), allow_comma: bool = False) -> str:
    """Return ``text`` stripped if it is safe to splice as one expression, else raise SqlTextError.

    ``allow`` lifts specific keywords for clauses whose grammar needs them
    (``TTL … DELETE WHERE …``). A top-level comma is refused unless ``allow_comma``:
    inside a column definition it would start the next column (``DEFAULT 1, x String``);
    key lists and TTL rule lists opt in because the caller wraps or expects them.
    """
    stripped = text.strip()
    if not stripped:
        raise SqlTextError("Invalid SQL expression: it is empty")
    if len(stripped) > MAX_EXPRESSION_LENGTH:
        raise SqlTextError(f"Invalid SQL expression: longer than {MAX_EXPRESSION_LENGTH} characters")
    if "\x00" in stripped:
        raise SqlTextError("Invalid SQL expression: it contains a NUL character")
    tokens = tokenize(stripped)
    allowed = {word.upper() for word in allow}
    stack: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.kind == "semicolon":
            raise SqlTextError("Invalid SQL expression: ';' is not allowed")
        if tok.kind == "comment":
            raise SqlTextError("Invalid SQL expression: comments are not allowed")
        if tok.kind == "punct" and tok.text == "," and not stack and not allow_comma:
            raise SqlTextError("Invalid SQL expression: a top-level ',' is not allowed here")
        if tok.text == "{" and _is_query_parameter(tokens, i):
            raise SqlTextError("Invalid SQL expression: query parameters are not allowed")
        if tok.kind == "punct" and tok.text in "([{":
            stack.append(tok.text)
        elif tok.kind == "punct" and tok.text in _CLOSERS:
            if not stack or stack.pop() != _CLOSERS[tok.text]:
                raise SqlTextError(f"Invalid SQL expression: unbalanced {tok.text!r} at position {tok.start}")
        elif tok.kind == "ident":
            word = tok.text.upper()
            if word in FORBIDDEN_KEYWORDS and word not in allowed:
                followed_by_call = i + 1 < len(tokens) and tokens[i + 1].text == "("
                if not (word in _CALLABLE_KEYWORDS and followed_by_call):
                    raise SqlTextError(f"Invalid SQL expression: {tok.text!r} is not allowed in an expression")
    if stack:
        raise SqlTextError(f"Invalid SQL expression: unbalanced {stack[-1]!r}")
    return stripped
