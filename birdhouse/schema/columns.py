"""The column model and the SPEC §4.1 schema parser.

One syntax serves the ``schema=`` parameter, the ``SCHEMA >`` block of a
datafile and the output of inference, so there is one parser for all three.
Every piece of a column that becomes SQL text is checked here: names against
the §4.6 pattern, types by ``types``, expressions by ``sqltext``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import msgspec

from birdhouse.schema.jsonpath import JsonPathError, parse_jsonpath
from birdhouse.schema.names import InvalidName, quote_identifier, validate_column_name
from birdhouse.schema.sqltext import SqlTextError, Token, check_expression, tokenize
from birdhouse.schema.types import (
    ChType,
    TypeParseError,
    UnsupportedType,
    check_ingestible,
    parse_type,
    parse_type_prefix,
)

__all__ = [
    "DEFAULT_KINDS",
    "Column",
    "SchemaError",
    "is_json_typed",
    "parse_schema",
    "split_schema",
    "validate_column",
    "validate_columns",
]

DEFAULT_KINDS = ("DEFAULT", "MATERIALIZED", "ALIAS")


class SchemaError(ValueError):
    """A schema that cannot be used to create a data source; the message is client-facing."""


@functools.lru_cache(maxsize=4096)
def _parsed(type_sql: str) -> ChType:
    # Columns are re-created from the catalog often; the same few type strings recur.
    return parse_type(type_sql)


class Column(msgspec.Struct, frozen=True):
    """A column as stored in the catalog. ``type`` is canonical ``ChType.sql()`` text;
    ``codec`` is the text inside ``CODEC(...)``; ``jsonpath`` is the annotation as written."""

    name: str
    type: str
    jsonpath: str | None = None
    default_kind: str | None = None
    default_expr: str | None = None
    codec: str | None = None

    @property
    def ch_type(self) -> ChType:
        return _parsed(self.type)

    @property
    def nullable(self) -> bool:
        return self.ch_type.is_nullable

    @property
    def stored(self) -> bool:
        """False for MATERIALIZED/ALIAS columns, which a row never supplies."""
        return self.default_kind not in ("MATERIALIZED", "ALIAS")

    def sql(self) -> str:
        """The column definition for CREATE TABLE (no json path: that is ours, not the engine's)."""
        parts = [quote_identifier(self.name), self.type]
        if self.default_kind is not None and self.default_expr is not None:
            parts += [self.default_kind, self.default_expr]
        if self.codec is not None:
            parts.append(f"CODEC({self.codec})")
        return " ".join(parts)

    def schema_sql(self) -> str:
        """The column in §4.1 schema syntax, json path included; parse_schema reads it back."""
        text = self.sql()
        return f"{text} `json:{self.jsonpath}`" if self.jsonpath is not None else text


def split_schema(text: str) -> list[str]:
    """Split at top-level commas and newlines, dropping ``--`` comments and blank pieces.

    Brackets, quotes and backticks protect what they enclose, so ``Map(String, String)``,
    ``DEFAULT ','`` and ``json:$.['a,b']`` annotations stay in one piece.
    """
    pieces: list[str] = []
    buf: list[str] = []
    depth, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'`\"":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            buf.append(text[i : j + 1])
            i = j + 1
            continue
        if ch == "-" and text.startswith("--", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth <= 0 and ch in ",\n":
            pieces.append("".join(buf).strip())
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    pieces.append("".join(buf).strip())
    return [p for p in pieces if p]


# `INDEX name expr TYPE t ...`; a bare column named `index` must not look like one.
_INDEX_RE = re.compile(r"INDEX\s+\S+\s.*\bTYPE\s", re.IGNORECASE | re.DOTALL)


def _fail(name: str, why: object) -> SchemaError:
    return SchemaError(f"Invalid column '{name[:100]}': {why}")


def _parse_column(piece: str, check_types: bool) -> Column | None:
    if _INDEX_RE.match(piece):
        return None  # indexes belong in INDEXES >, the column parser skips them (§4.1)
    head = piece.split(None, 1)[0]
    if piece.startswith("`"):
        close = piece.find("`", 1)
        if close < 0:
            raise SchemaError(f"Invalid column definition {piece[:100]!r}: unterminated backtick")
        raw_name, pos = piece[1:close], close + 1
    else:
        raw_name, pos = head, len(head)
    try:
        name = validate_column_name(raw_name)
    except InvalidName as exc:
        raise SchemaError(str(exc)) from None
    if not piece[pos:].strip():
        raise _fail(name, "missing type")
    try:
        ch_type, pos = parse_type_prefix(piece, pos)
        if check_types:
            check_ingestible(ch_type)
    except (TypeParseError, UnsupportedType) as exc:
        raise _fail(name, exc) from None
    try:
        tokens = tokenize(piece[pos:])
    except SqlTextError as exc:
        raise _fail(name, exc) from None
    return _parse_modifiers(name, ch_type, piece[pos:], tokens)


def _parse_modifiers(name: str, ch_type: ChType, rest: str, tokens: list[Token]) -> Column:
    jsonpath: str | None = None
    kind: str | None = None
    expr: str | None = None
    codec: str | None = None
    expr_start = -1
    expr_end = -1
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        word = tok.text.upper() if tok.kind == "ident" else ""
        if tok.kind == "quoted_ident" and tok.text.startswith("`json:"):
            if jsonpath is not None:
                raise _fail(name, "more than one json path")
            jsonpath = tok.text[6:-1]
            expr_start = -1
        elif word in DEFAULT_KINDS:
            if kind is not None:
                raise _fail(name, f"more than one of {', '.join(DEFAULT_KINDS)}")
            kind, expr_start = word, tok.end
        elif word == "CODEC" and i + 1 < len(tokens) and tokens[i + 1].text == "(":
            if codec is not None:
                raise _fail(name, "more than one CODEC")
            close = _matching(tokens, i + 1)
            if close < 0:
                raise _fail(name, "unbalanced CODEC(...)")
            codec = rest[tokens[i + 1].end : tokens[close].start].strip()
            expr_start, i = -1, close
        elif expr_start >= 0:
            close = _matching(tokens, i) if tok.text in "([{" else i
            if close < 0:  # unbalanced: keep it all, check_expression says what is wrong
                close = len(tokens) - 1
            expr_end, i = tokens[close].end, close
            expr = rest[expr_start:expr_end].strip()
        else:
            raise _fail(name, f"unexpected {tok.text[:50]!r}")
        i += 1
    return _validated(name, ch_type, jsonpath, kind, expr, codec)


def _matching(tokens: list[Token], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].kind == "punct":
            depth += tokens[j].text in "([{"
            depth -= tokens[j].text in ")]}"
            if depth == 0:
                return j
    return -1


def _validated(
    name: str, ch_type: ChType, jsonpath: str | None, kind: str | None, expr: str | None, codec: str | None
) -> Column:
    if kind is not None and expr is None:
        raise _fail(name, f"{kind} needs an expression")
    if kind is not None and jsonpath is not None and kind != "DEFAULT":
        raise _fail(name, f"{kind} columns cannot have a json path")
    if kind == "DEFAULT" and expr is not None and expr.upper() == "NULL" and ch_type.is_nullable:
        kind = expr = None  # `Nullable(T) DEFAULT NULL` is just Nullable (§4.1)
    if jsonpath is not None:
        try:
            parse_jsonpath(jsonpath)
        except JsonPathError as exc:
            raise SchemaError(str(exc)) from None  # exact §4.3 wording, no prefix
    try:
        expr = check_expression(expr) if expr is not None else None
        codec = check_expression(codec, allow_comma=True) if codec is not None else None
    except SqlTextError as exc:
        raise _fail(name, exc) from None
    return Column(name=name, type=ch_type.sql(), jsonpath=jsonpath, default_kind=kind, default_expr=expr, codec=codec)


def validate_column(column: Column, *, check_types: bool = True) -> Column:
    """Validate a Column built directly (API payloads, the catalog) as parse_schema would,
    returning it with its type in canonical form."""
    try:
        name = validate_column_name(column.name)
        ch_type = parse_type(column.type)
        if check_types:
            check_ingestible(ch_type)
    except (InvalidName, TypeParseError, UnsupportedType) as exc:
        raise _fail(column.name, exc) from None
    if column.default_kind is not None and column.default_kind not in DEFAULT_KINDS:
        raise _fail(name, f"unknown default kind {column.default_kind[:50]!r}")
    if column.default_kind is None and column.default_expr is not None:
        raise _fail(name, "default_expr given without default_kind")
    return _validated(name, ch_type, column.jsonpath, column.default_kind, column.default_expr, column.codec)


def is_json_typed(columns: Iterable[Column]) -> bool:
    """A data source is JSON-typed iff at least one column has a json path (§4.1)."""
    return any(c.jsonpath is not None for c in columns)


def parse_schema(text: str, *, check_types: bool = True) -> list[Column]:
    """Parse and validate a §4.1 schema. ``check_types=False`` admits any parsable type
    (AggregateFunction targets of materialized views); ingestion paths keep the default."""
    columns = [c for piece in split_schema(text) if (c := _parse_column(piece, check_types)) is not None]
    if not columns:
        raise SchemaError("Invalid schema: it has no columns")
    validate_columns(columns)
    return columns


def validate_columns(columns: list[Column]) -> None:
    """Checks across columns: unique names, and the JSON-typed rule of §4.1."""
    seen: set[str] = set()
    for c in columns:
        if c.name in seen:
            raise SchemaError(f"Duplicated column name '{c.name}'")
        seen.add(c.name)
    if is_json_typed(columns):
        for c in columns:
            if c.jsonpath is None and c.default_kind is None and not c.nullable:
                raise SchemaError(
                    f"Column '{c.name}' has no json path, so it is never read from the body: "
                    "give it a DEFAULT, MATERIALIZED or ALIAS expression, or make it Nullable"
                )
