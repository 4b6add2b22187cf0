"""The read-only SQL guard for ``/v0/sql`` and pipes (SPEC §10.2, DESIGN invariant 7).

A query may read only the workspace's own data sources (and their
``_quarantine`` tables) that the token may read: no table functions beyond a
few generators, no other database, no writes, no SETTINGS, no files.

How a query is judged, in order:

1. **Lex** it with a faithful ClickHouse lexer (:mod:`.lexer`). One statement
   only (a trailing ``;`` is fine), and it must start like a SELECT or DESCRIBE.
2. **Re-emit** it canonically (:mod:`.rewrite`): comments dropped, every ``;``
   inside a string escaped. The engine never sees the user's own text, so it can
   never see a second statement.
3. **Parse** it with the engine's ``EXPLAIN AST`` and walk the tree
   (:mod:`.ast`): every node kind must be one we know; every table must be a
   plain name that is a CTE or a known, readable data source; table functions,
   object-reaching functions, SETTINGS and INTO OUTFILE are refused.
4. **Rewrite** table references to `` `db`.`table` `` (CTEs to a name no table
   can have) and strip the FORMAT clause. A table the token reads through a
   row filter (``DATASOURCES:READ:<ds>:<filter>``) becomes
   ``(SELECT * FROM `db`.`table` WHERE (<filter>))``, so the query never sees
   the rows the filter excludes.
5. **Verify**: parse the rewritten text again and require that every table it
   reads is `` `db`.<a table allowed in step 3> `` or a renamed CTE. Something
   that cannot be verified is refused, never run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from birdhouse.backends.base import BackendError, BackendUnavailable
from birdhouse.query.ast import AstNode, AstParseError, parse_explain_ast
from birdhouse.query.errors import SqlRefused
from birdhouse.query.lexer import Token, TokenKind, tokenize
from birdhouse.query.policy import (
    NOT_SUPPORTED,
    check_tree,
    root_format,
)
from birdhouse.query.rewrite import (
    CTE_PREFIX,
    cte_definitions,
    emit,
    format_clause,
    identifier_value,
    quote_identifier,
    shown,
    table_positions,
)

__all__ = ["FORMATS", "GuardedQuery", "SqlRefused", "check_filter", "guard_query"]

# Output formats a query may name; matched case-insensitively, returned as spelled here.
FORMATS = (
    "JSON", "JSONCompact", "JSONStrings", "JSONEachRow", "JSONCompactEachRow", "CSV", "CSVWithNames",
    "TSV", "TabSeparated", "TSVWithNames", "TabSeparatedWithNames", "TSVRaw", "TabSeparatedRaw", "Parquet",
    "Arrow", "Markdown", "Pretty", "PrettyCompact", "PrettyCompactMonoBlock", "PrettyMonoBlock",
    "PrettyNoEscapes", "PrettyCompactNoEscapes", "PrettySpace", "PrettySpaceNoEscapes",
)  # fmt: skip
_FORMATS_BY_KEY = {name.lower(): name for name in FORMATS}
DEFAULT_FORMAT = "JSON"

_DATABASE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CTE_NAME_RE = _DATABASE_RE


@dataclass(frozen=True)
class GuardedQuery:
    """A query that passed the guard.

    ``sql`` is the statement to run: canonical text, FORMAT clause removed,
    tables rewritten to `` `db`.`table` ``. ``format`` is the output format the
    query asked for (``"JSON"`` when it named none). ``tables`` are the workspace
    tables it reads, by the names the user wrote.
    """

    sql: str
    format: str
    tables: frozenset[str]


def _explain(explain_ast: Callable[[str], str], text: str) -> AstNode:
    try:
        dump = explain_ast(text)
    except BackendUnavailable:
        raise
    except BackendError as exc:
        raise SqlRefused(exc.message) from None
    try:
        return parse_explain_ast(dump)
    except AstParseError as exc:
        raise SqlRefused(f"The query could not be verified: {exc}") from None


def _output_format(name: str | None) -> str:
    if name is None:
        return DEFAULT_FORMAT
    canonical = _FORMATS_BY_KEY.get(name.lower())
    if canonical is None:
        supported = ", ".join(FORMATS)
        raise SqlRefused(f"Unsupported output format '{shown(name)}'. Supported formats: {supported}")
    return canonical


def _merge_service_names(tokens: list[Token], known: frozenset[str]) -> list[Token]:
    """Extension point for service data sources such as ``tinybird.datasources_ops_log``.

    A *dotted* name in ``known_tables`` is one table of the workspace database
    whose name contains the dot (data source names never do, SPEC §4.6). Its
    written form ``tinybird.datasources_ops_log`` (any quoting, no spaces) is
    three tokens; they are merged here into one quoted identifier before any
    other step, so the rest of the guard treats it exactly like a data source
    name: ``readable`` decides access, the rewrite qualifies it as
    `` `db`.`tinybird.datasources_ops_log` `` and pass 2 verifies that. Dotted
    names not in ``known_tables`` are untouched (and refused as another database).
    """
    service = {name for name in known if "." in name}
    if not service:
        return tokens
    merged: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if (
            token.is_identifier
            and i + 2 < len(tokens)
            and tokens[i + 1].is_punct(".")
            and tokens[i + 2].is_identifier
            and f"{identifier_value(token)}.{identifier_value(tokens[i + 2])}" in service
        ):
            name = f"{identifier_value(token)}.{identifier_value(tokens[i + 2])}"
            merged.append(Token(TokenKind.QUOTED_IDENTIFIER, quote_identifier(name), token.start))
            i += 3
            continue
        merged.append(token)
        i += 1
    return merged


def guard_query(
    sql: str,
    *,
    database: str,
    known_tables: Collection[str],
    readable: Callable[[str], bool],
    explain_ast: Callable[[str], str],
    filters: Mapping[str, str] | None = None,
) -> GuardedQuery:
    """Check ``sql`` and rewrite it to read from ``database``; raise :class:`SqlRefused` if it may not run.

    ``filters`` maps a table name to the row filter the token reads it through.

    ``explain_ast(text)`` must return the engine's ``EXPLAIN AST <text>`` output
    and raise :class:`~birdhouse.backends.BackendError` when the text does not
    parse. Passing the guard does *not* mean the query will succeed: it can still
    fail in the engine (unknown column, type error, limits).
    """
    if not _DATABASE_RE.fullmatch(database):
        raise ValueError(f"invalid database name {database!r}")
    filtered = {name: check_filter(text) for name, text in (filters or {}).items()}
    return _guard(sql, database, frozenset(known_tables), readable, explain_ast, filtered)


# Words that would let a filter leave its WHERE clause or read other rows.
_FILTER_FORBIDDEN = frozenset(
    {
        "SELECT", "FROM", "UNION", "JOIN", "WITH", "SETTINGS", "FORMAT", "INTO", "EXCEPT", "INTERSECT",
        "WHERE", "PREWHERE", "GROUP", "ORDER", "LIMIT", "HAVING", "WINDOW", "QUALIFY", "OFFSET", "FETCH",
    }
)  # fmt: skip


def check_filter(text: str) -> str:
    """A row filter as canonical SQL, or :class:`SqlRefused`.

    A filter is one boolean expression over the table's columns: balanced
    brackets, no statement keywords (so it cannot close the WHERE it is put in,
    add a UNION or read a subquery), no ``;``. What it may call is checked with
    the rest of the query when the rewritten text is verified.
    """
    tokens = tokenize(text)
    depth = 0
    for token in tokens:
        if token.kind in (TokenKind.ERROR, TokenKind.VERTICAL_DELIMITER, TokenKind.SEMICOLON):
            raise SqlRefused(f"Invalid row filter {shown(text)!r}: unexpected {shown(token.text)!r}")
        if token.kind is TokenKind.BARE_WORD and token.text.upper() in _FILTER_FORBIDDEN:
            raise SqlRefused(f"Invalid row filter {shown(text)!r}: a filter is an expression, not a query")
        if token.kind is TokenKind.PUNCTUATION and token.text in "([{":
            depth += 1
        elif token.kind is TokenKind.PUNCTUATION and token.text in ")]}":
            depth -= 1
            if depth < 0:
                raise SqlRefused(f"Invalid row filter {shown(text)!r}: unbalanced brackets")
    if depth != 0:
        raise SqlRefused(f"Invalid row filter {shown(text)!r}: unbalanced brackets")
    canonical = emit(tokens, frozenset(), {}).strip()
    if not canonical:
        raise SqlRefused("Invalid row filter: it is empty")
    return canonical


def _guard(
    sql: str,
    database: str,
    known: frozenset[str],
    readable: Callable[[str], bool],
    explain_ast: Callable[[str], str],
    filters: Mapping[str, str],
) -> GuardedQuery:
    if "\x00" in sql:
        raise SqlRefused("The query contains a NUL character")
    tokens = _merge_service_names(tokenize(sql), known)
    for token in tokens:
        if token.kind in (TokenKind.ERROR, TokenKind.VERTICAL_DELIMITER):
            raise SqlRefused(f"Syntax error: unrecognized token {shown(token.text)!r} at position {token.start}")
    sig = [i for i, token in enumerate(tokens) if token.significant]
    dropped: set[int] = set()
    while sig and tokens[sig[-1]].kind is TokenKind.SEMICOLON:
        dropped.add(sig.pop())
    if not sig:
        raise SqlRefused("The query is empty")
    if any(tokens[i].kind is TokenKind.SEMICOLON for i in sig):
        raise SqlRefused(f"{NOT_SUPPORTED}: send one statement per query")
    first = tokens[sig[0]]
    if not (first.is_word("SELECT", "WITH", "DESCRIBE", "DESC", "FROM") or first.is_punct("(")):
        raise SqlRefused(NOT_SUPPORTED)

    ctes = cte_definitions(tokens, sig)
    cte_names = frozenset(c.name for c in ctes)
    for cte in ctes:
        if not _CTE_NAME_RE.fullmatch(cte.name):
            raise SqlRefused(f"CTE names must be plain identifiers ([A-Za-z_][A-Za-z0-9_]*): '{shown(cte.name)}'")

    # Pass 1: what the user wrote.
    root = _explain(explain_ast, emit(tokens, frozenset(dropped), {}))
    reads: list[str] = []

    def classify_written(name: str) -> None:
        if "." in name and name not in known:  # dotted known names: see _merge_service_names
            raise SqlRefused(
                f"{NOT_SUPPORTED}: '{shown(name)}' is in another database; "
                "only this workspace's data sources can be read"
            )
        if name in cte_names:
            return
        if name not in known:
            raise SqlRefused(f"Resource '{shown(name)}' not found")
        if not readable(name):
            raise SqlRefused(f"Not enough permissions to read '{name}': the token needs a read scope on it", 403)
        reads.append(name)

    format_name = root_format(root, allow_format=True)
    check_tree(root, classify_written, database, len(ctes))
    fmt = _output_format(format_name)

    # Rewrite: qualify tables, rename CTEs, drop FORMAT.
    skip = set(dropped)
    if format_name is not None:
        clause = format_clause(tokens, sig)
        if clause is None or clause[0] != format_name:
            raise SqlRefused("The query could not be verified: FORMAT must be the last clause")
        skip.update(clause[1])
    replacements: dict[int, str] = {}
    for cte in ctes:
        replacements[cte.token_index] = quote_identifier(CTE_PREFIX + cte.name)
    allowed = frozenset(reads)
    for position in table_positions(tokens, sig):
        if position.name in cte_names:
            text = quote_identifier(CTE_PREFIX + position.name)
            if position.may_alias and not position.has_alias:
                text += " AS " + quote_identifier(position.name)
            replacements[position.token_index] = text
        elif position.name in allowed:
            table = f"`{database}`.{quote_identifier(position.name)}"
            row_filter = filters.get(position.name)
            if row_filter is not None:
                table = f"(SELECT * FROM {table} WHERE ({row_filter}))"
                if position.may_alias and not position.has_alias:
                    table += " AS " + quote_identifier(position.name)
            replacements[position.token_index] = table
    rewritten = emit(tokens, frozenset(skip), replacements).strip()

    # Pass 2: verify what will actually run.
    verified: set[str] = set()
    prefix = database + "."

    def classify_rewritten(name: str) -> None:
        if name.startswith(CTE_PREFIX) and name[len(CTE_PREFIX) :] in cte_names:
            return
        if name.startswith(prefix) and name[len(prefix) :] in allowed:
            verified.add(name[len(prefix) :])
            return
        raise SqlRefused(
            f"The query could not be verified: table reference '{shown(name)}' could not be rewritten "
            "to this workspace (write data source names plainly after FROM, JOIN or IN)"
        )

    root = _explain(explain_ast, rewritten)
    if root_format(root, allow_format=False) is not None:
        raise SqlRefused("The query could not be verified: FORMAT must be the last clause")
    check_tree(root, classify_rewritten, database, len(ctes))
    return GuardedQuery(sql=rewritten, format=fmt, tables=frozenset(verified))
