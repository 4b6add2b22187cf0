"""``.datasource`` files (SPEC §4.5): parse and render.

The format is line-based: ``KEYWORD value`` lines, and ``KEYWORD >`` followed by
an indented block. Anything birdhouse does not implement is a load error that
names the keyword and its line: a datafile whose Kafka or sharing settings were
silently dropped would look deployed while doing something else.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import msgspec

from birdhouse.schema.columns import Column, SchemaError, parse_schema
from birdhouse.schema.engine import EngineError, EngineSpec, canonical_engine_name, engine_full
from birdhouse.schema.sqltext import SqlTextError, check_expression

__all__ = [
    "TOKEN_SCOPES",
    "DatafileError",
    "DatasourceFile",
    "parse_datasource_file",
    "render_datasource_file",
]

TOKEN_SCOPES = ("READ", "APPEND")

_ENGINE_FIELDS = {
    "ENGINE": "engine",
    "ENGINE_SORTING_KEY": "sorting_key",
    "ENGINE_PARTITION_KEY": "partition_key",
    "ENGINE_PRIMARY_KEY": "primary_key",
    "ENGINE_TTL": "ttl",
    "ENGINE_SETTINGS": "settings",
    "ENGINE_VER": "ver",
    "ENGINE_SIGN": "sign",
    "ENGINE_VERSION": "version",
}
_BLOCK_KEYWORDS = frozenset({"DESCRIPTION", "SCHEMA", "INDEXES"})
_UNSUPPORTED = ("FORWARD_QUERY", "BACKFILL", "SHARED_WITH")
_UNSUPPORTED_PREFIXES = ("KAFKA_", "IMPORT_")
_KEYWORD_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\s+(.*))?")
_TOKEN_RE = re.compile(r'(?:"([^"]+)"|(\S+))\s+(\S+)')
_INDEX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s+.+\s+TYPE\s+.+", re.IGNORECASE)
_MAX_TOKEN_NAME = 255


class DatafileError(ValueError):
    """A datafile that cannot be loaded; the message names the keyword and line."""


class DatasourceFile(msgspec.Struct, frozen=True):
    """A parsed datafile. ``engine`` is what the file says; defaults (§9.4) are the caller's."""

    columns: list[Column]
    engine: EngineSpec = EngineSpec()
    description: str | None = None
    tokens: list[tuple[str, str]] = []
    tags: list[str] = []
    indexes: list[str] = []


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _blocks(text: str) -> list[tuple[int, str, str, bool]]:
    """(line number, keyword, value) per top-level keyword; a ``>`` value becomes its dedented block."""
    lines = text.splitlines()
    out: list[tuple[int, str, str, bool]] = []
    i = 0
    while i < len(lines):
        line, lineno = lines[i], i + 1
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            raise DatafileError(f"Line {lineno}: unexpected indented line outside a block")
        m = _KEYWORD_RE.fullmatch(line.rstrip())
        if m is None:
            raise DatafileError(f"Line {lineno}: expected a keyword, got {line.strip()[:100]!r}")
        keyword, value = m.group(1).upper(), (m.group(2) or "").strip()
        is_block = value == ">"
        if is_block:
            body: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i][0].isspace()):
                body.append(lines[i])
                i += 1
            value = textwrap.dedent("\n".join(body)).strip("\n")
        elif keyword in _BLOCK_KEYWORDS - {"DESCRIPTION"}:
            raise DatafileError(f"Line {lineno}: {keyword} must be followed by '>' and an indented block")
        out.append((lineno, keyword, value, is_block))
    return out


def _check_keyword(lineno: int, keyword: str) -> None:
    if keyword in _UNSUPPORTED or keyword.startswith(_UNSUPPORTED_PREFIXES):
        raise DatafileError(f"Line {lineno}: {keyword} is not supported by birdhouse")
    if keyword not in _ENGINE_FIELDS and keyword not in _BLOCK_KEYWORDS and keyword not in ("TOKEN", "TAGS"):
        raise DatafileError(f"Line {lineno}: unknown keyword {keyword[:100]}")


def _parse_token(lineno: int, value: str) -> tuple[str, str]:
    m = _TOKEN_RE.fullmatch(value)
    if m is None:
        raise DatafileError(f'Line {lineno}: TOKEN needs a name and a scope: TOKEN "name" READ|APPEND')
    name, scope = m.group(1) or m.group(2), m.group(3).upper()
    if scope not in TOKEN_SCOPES:
        raise DatafileError(f"Line {lineno}: TOKEN scope must be READ or APPEND, got {scope[:50]!r}")
    if len(name) > _MAX_TOKEN_NAME or not name.isprintable():
        raise DatafileError(f"Line {lineno}: invalid TOKEN name {name[:100]!r}")
    return name, scope


def _parse_index(lineno: int, line: str) -> str:
    line = line.strip().rstrip(",").strip()
    if _INDEX_RE.fullmatch(line) is None:
        raise DatafileError(f"Line {lineno}: INDEXES lines are 'name expr TYPE type GRANULARITY n'")
    try:
        return check_expression(line)
    except SqlTextError as exc:
        raise DatafileError(f"Line {lineno}: invalid index {line[:100]!r}: {exc}") from None


def parse_datasource_file(text: str, *, check_types: bool = True) -> DatasourceFile:
    """Parse a ``.datasource`` file; raise DatafileError on anything unusable."""
    seen: set[str] = set()
    schema: tuple[int, str] | None = None
    engine: dict[str, str] = {}
    description: str | None = None
    tokens: list[tuple[str, str]] = []
    tags: list[str] = []
    indexes: list[str] = []
    for lineno, keyword, value, is_block in _blocks(text):
        _check_keyword(lineno, keyword)
        if keyword in seen and keyword != "TOKEN":
            raise DatafileError(f"Line {lineno}: {keyword} appears more than once")
        seen.add(keyword)
        if keyword == "TOKEN":
            tokens.append(_parse_token(lineno, value))
        elif keyword == "TAGS":
            tags = [t.strip() for t in _unquote(value).split(",") if t.strip()]
        elif keyword == "DESCRIPTION":
            description = value if is_block else _unquote(value)
        elif keyword == "SCHEMA":
            schema = (lineno, value)
        elif keyword == "INDEXES":
            indexes = [_parse_index(lineno, ln) for ln in value.splitlines() if ln.strip()]
        else:
            if not _unquote(value):
                raise DatafileError(f"Line {lineno}: {keyword} needs a value")
            engine[_ENGINE_FIELDS[keyword]] = _unquote(value)
    if schema is None:
        raise DatafileError("SCHEMA is required")
    try:
        columns = parse_schema(schema[1], check_types=check_types)
    except SchemaError as exc:
        raise DatafileError(f"Line {schema[0]}: SCHEMA: {exc}") from None
    try:
        spec = EngineSpec(**{**engine, "engine": canonical_engine_name(engine.get("engine", "MergeTree"))})
        engine_full(spec, columns)  # validate now: a bad ENGINE_* must fail the load, not the CREATE
    except EngineError as exc:
        raise DatafileError(str(exc)) from None
    return DatasourceFile(columns, spec, description, tokens, tags, indexes)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line.strip() else "" for line in text.splitlines())


def render_datasource_file(
    description: str | None,
    columns: list[Column],
    engine: EngineSpec,
    tokens: Sequence[tuple[str, str]] = (),
    tags: Sequence[str] = (),
    indexes: Sequence[str] = (),
) -> str:
    """Render a datafile that ``parse_datasource_file`` reads back to the same values."""
    out: list[str] = [f'TOKEN "{name}" {scope}' for name, scope in tokens]
    if description is not None and description.strip():
        out += ["DESCRIPTION >", _indent(description.strip("\n"))]
    if tags:
        out.append(f'TAGS "{", ".join(tags)}"')
    out += ["SCHEMA >", ",\n".join(f"    {c.schema_sql()}" for c in columns)]
    if indexes:
        out += ["INDEXES >", *(f"    {line}" for line in indexes)]
    for keyword, field in _ENGINE_FIELDS.items():
        value = getattr(engine, field)
        if value is not None and not (keyword == "ENGINE" and value == "MergeTree"):
            out.append(f'{keyword} "{value}"')
    return "\n".join(out) + "\n"
