"""Token-level work for the guard: statement splitting, canonical text, CTE
names, table positions and the FORMAT clause.

The text sent to the engine is never the user's text: it is re-emitted from
the tokens in a canonical form with comments dropped and every ``;`` inside a
string written as ``\\x3B``. The emitted text therefore contains no ``;`` at
all, so no disagreement between this lexer and the engine's can ever make the
engine see a second statement (chDB runs every statement it is given, even
behind ``EXPLAIN AST``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from birdhouse.query.errors import SqlRefused
from birdhouse.query.lexer import Token, TokenKind

__all__ = [
    "CTE_PREFIX",
    "cte_definitions",
    "emit",
    "format_clause",
    "identifier_value",
    "quote_identifier",
    "table_positions",
]

# CTEs are renamed so that a reference the engine resolves outside the CTE's
# scope names a table that cannot exist (data source names cannot hold ':'),
# instead of silently falling back to a table of the session's database.
CTE_PREFIX = "__cte:"

_FORBIDDEN_IN_IDENTIFIERS = ("(alias ", "(children ", "(column ")

# Keywords that end a FROM list at the current bracket depth.
_FROM_LIST_END = frozenset(
    {
        "WHERE", "PREWHERE", "GROUP", "ORDER", "LIMIT", "HAVING", "SETTINGS", "FORMAT", "UNION", "INTERSECT",
        "EXCEPT", "WINDOW", "QUALIFY", "INTO", "SELECT", "ON", "USING", "ARRAY", "OFFSET", "FETCH", "WITH",
    }
)  # fmt: skip
# Keywords that may follow a table expression and are not its alias.
_NOT_ALIAS = _FROM_LIST_END | frozenset(
    {
        "FINAL", "SAMPLE", "LEFT", "RIGHT", "INNER", "FULL", "CROSS", "OUTER", "JOIN", "GLOBAL", "LOCAL",
        "ANY", "ALL", "ASOF", "SEMI", "ANTI", "ONLY", "PASTE", "NATURAL", "FROM", "STREAM",
    }
)  # fmt: skip


def shown(name: str) -> str:
    return name if len(name) <= 100 else name[:100] + "…"


def identifier_value(token: Token) -> str:
    """The name a bare word or quoted identifier token stands for."""
    if token.kind is TokenKind.BARE_WORD:
        return token.text
    body = token.text[1:-1]
    if token.kind is TokenKind.UNICODE_IDENTIFIER:
        value = body
    else:
        if "\\" in body:
            raise SqlRefused(f"Escape sequences in quoted identifiers are not supported: {shown(token.text)}")
        quote = token.text[0]
        value = body.replace(quote + quote, quote)
    bad = [ch for ch in value if ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029;`\\"]
    if bad or any(marker in value for marker in _FORBIDDEN_IN_IDENTIFIERS):
        raise SqlRefused(f"Identifier {shown(value)!r} contains characters that are not allowed")
    return value


def quote_identifier(name: str) -> str:
    if "`" in name or "\\" in name:
        raise SqlRefused(f"Identifier {shown(name)!r} contains characters that are not allowed")
    return f"`{name}`"


def _quote_string(value: str) -> str:
    """A single-quoted literal for raw text (heredocs, ‘unicode strings’)."""
    return "'" + value.replace("\\", "\\x5C").replace("'", "\\'").replace(";", "\\x3B") + "'"


def _canonical_string(text: str) -> str:
    """Re-emit a '…' literal with the same value and no ';' or '\\G' in its text."""
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]  # the lexer guarantees an escape is complete
            if nxt == "\\":
                out.append("\\x5C")
            elif nxt in ";G":
                raise SqlRefused(f"Unsupported escape sequence \\{nxt} in a string literal")
            elif nxt == "x":
                code = body[i + 2 : i + 4]
                if len(code) != 2 or any(c not in "0123456789abcdefABCDEF" for c in code):
                    raise SqlRefused("Invalid \\x escape sequence in a string literal")
                out.append(body[i : i + 4])
                i += 4
                continue
            else:
                out.append(body[i : i + 2])
            i += 2
        elif ch == ";":
            out.append("\\x3B")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "'" + "".join(out) + "'"


def _canonical(token: Token) -> str:
    kind = token.kind
    if kind is TokenKind.WHITESPACE:
        return token.text if token.text.isascii() else " "
    if kind is TokenKind.COMMENT:
        return " "  # never nothing: `-/**/-` must not become a `--` comment
    if kind is TokenKind.STRING:
        return _canonical_string(token.text) if token.text.startswith("'") else token.text
    if kind in (TokenKind.UNICODE_STRING, TokenKind.HEREDOC):
        if kind is TokenKind.UNICODE_STRING:
            return _quote_string(token.text[1:-1])
        tag_len = token.text.index("$", 1) + 1
        return _quote_string(token.text[tag_len:-tag_len])
    if kind in (TokenKind.QUOTED_IDENTIFIER, TokenKind.UNICODE_IDENTIFIER):
        return quote_identifier(identifier_value(token))
    if kind is TokenKind.PUNCTUATION and token.text == "\u2212":
        return " - "
    if kind in (TokenKind.BARE_WORD, TokenKind.NUMBER, TokenKind.PUNCTUATION):
        return token.text
    raise SqlRefused(f"Unexpected {kind.value} {shown(token.text)!r}")


def emit(tokens: Sequence[Token], skip: frozenset[int], replacements: Mapping[int, str]) -> str:
    """Canonical text of ``tokens`` minus ``skip``, with ``replacements`` by token index."""
    out: list[str] = []
    for index, token in enumerate(tokens):
        if index in skip:
            continue
        piece = replacements.get(index)
        if piece is None:
            piece = _canonical(token)
        if out and piece[:1] in ("'", "`") and (out[-1][-1:].isalnum() or out[-1][-1:] in "_$"):
            piece = " " + piece  # x‘41’ must not turn into the hex literal x'41'
        out.append(piece)
    text = "".join(out)
    if ";" in text or "\\G" in text or "\x00" in text:
        raise SqlRefused("The query could not be rewritten safely")
    return text


def format_clause(tokens: Sequence[Token], sig: Sequence[int]) -> tuple[str, tuple[int, int]] | None:
    """``(format name, (index of FORMAT, index of name))`` when the statement ends in one."""
    if len(sig) < 3:
        return None
    keyword, name = tokens[sig[-2]], tokens[sig[-1]]
    if not keyword.is_word("FORMAT") or not name.is_identifier:
        return None
    return identifier_value(name), (sig[-2], sig[-1])


@dataclass(frozen=True)
class CteDefinition:
    token_index: int
    name: str


def cte_definitions(tokens: Sequence[Token], sig: Sequence[int]) -> list[CteDefinition]:
    """``name [(columns)] AS [MATERIALIZED] (`` after WITH, RECURSIVE or a comma."""
    found: list[CteDefinition] = []
    for k in range(1, len(sig)):
        token = tokens[sig[k]]
        before = tokens[sig[k - 1]]
        if not token.is_identifier or not (before.is_word("WITH", "RECURSIVE") or before.is_punct(",")):
            continue
        j = k + 1
        if j < len(sig) and tokens[sig[j]].is_punct("("):
            j += 1
            while j < len(sig) and (tokens[sig[j]].is_identifier or tokens[sig[j]].is_punct(",")):
                j += 1
            if j >= len(sig) or not tokens[sig[j]].is_punct(")"):
                continue
            j += 1
        if j < len(sig) and tokens[sig[j]].is_word("AS"):
            j += 1
            if j < len(sig) and tokens[sig[j]].is_word("MATERIALIZED"):
                j += 1
            if j < len(sig) and tokens[sig[j]].is_punct("("):
                found.append(CteDefinition(sig[k], identifier_value(token)))
    return found


@dataclass(frozen=True)
class TablePosition:
    token_index: int
    name: str
    may_alias: bool  # FROM/JOIN/comma positions take an alias; IN and DESCRIBE do not
    has_alias: bool


def _position(token: Token, prev: Token, prev2: Token | None, nxt: Token | None, in_from: bool) -> str | None:
    """``"from"`` (takes an alias), ``"other"`` (IN, DESCRIBE) or None: not a table position."""
    after_array = prev2 is not None and prev2.is_word("ARRAY")
    if prev.is_word("FROM") or (prev.is_word("JOIN") and not after_array) or (prev.is_punct(",") and in_from):
        return "from"
    in_parens = prev.is_punct("(") and prev2 is not None and prev2.is_word("IN") and nxt is not None
    if prev.is_word("IN") or (in_parens and nxt is not None and nxt.is_punct(")")):
        return "other"
    describe_table = prev.is_word("TABLE") and prev2 is not None and prev2.is_word("DESCRIBE", "DESC")
    if describe_table or (prev.is_word("DESCRIBE", "DESC") and not token.is_word("TABLE")):
        return "other"
    return None


def _ends_from_list(token: Token) -> bool:
    return token.is_punct("|>") or (token.kind is TokenKind.BARE_WORD and token.text.upper() in _FROM_LIST_END)


def table_positions(tokens: Sequence[Token], sig: Sequence[int]) -> list[TablePosition]:
    """Identifier tokens in a table position: after FROM, JOIN (not ARRAY JOIN), a comma
    in a FROM list, IN (or ``IN (name)``), DESCRIBE [TABLE]. Not qualified, not a call."""
    found: list[TablePosition] = []
    in_from: list[bool] = [False]  # per bracket depth: inside a FROM list?
    for k, index in enumerate(sig):
        token = tokens[index]
        prev = tokens[sig[k - 1]] if k >= 1 else None
        prev2 = tokens[sig[k - 2]] if k >= 2 else None
        nxt = tokens[sig[k + 1]] if k + 1 < len(sig) else None
        qualified_or_call = nxt is not None and (nxt.is_punct(".") or nxt.is_punct("("))
        if token.is_identifier and prev is not None and not qualified_or_call:
            kind = _position(token, prev, prev2, nxt, in_from[-1])
            if kind is not None:
                has_alias = nxt is not None and (
                    nxt.is_word("AS")
                    or nxt.kind in (TokenKind.QUOTED_IDENTIFIER, TokenKind.UNICODE_IDENTIFIER)
                    or (nxt.kind is TokenKind.BARE_WORD and nxt.text.upper() not in _NOT_ALIAS)
                )
                found.append(TablePosition(index, identifier_value(token), kind == "from", has_alias))
        if token.kind is TokenKind.PUNCTUATION and token.text in "([{":
            in_from.append(False)
        elif token.kind is TokenKind.PUNCTUATION and token.text in ")]}":
            if len(in_from) > 1:
                in_from.pop()
        elif token.is_word("FROM") or (token.is_word("JOIN") and not (prev and prev.is_word("ARRAY"))):
            in_from[-1] = True
        elif _ends_from_list(token):
            in_from[-1] = False
    return found
