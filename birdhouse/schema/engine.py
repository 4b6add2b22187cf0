"""Table engines: the datafile ENGINE_* keywords (SPEC §4.5), defaults (§9.4) and
the quarantine table (§6).

``engine_sql`` is the only place that turns an EngineSpec into DDL text. Every
user-supplied fragment passes ``check_expression`` and every column reference
``quote_identifier`` on the way, so a spec that renders is safe to splice.
"""

from __future__ import annotations

import msgspec

from birdhouse.schema.columns import Column
from birdhouse.schema.names import DS_NAME_RE, InvalidName, quote_identifier, validate_identifier
from birdhouse.schema.sqltext import SqlTextError, check_expression, tokenize

__all__ = [
    "ENGINES",
    "QUARANTINE_ENGINE",
    "EngineError",
    "EngineSpec",
    "canonical_engine_name",
    "default_engine",
    "engine_full",
    "engine_sql",
    "parse_settings",
    "quarantine_columns",
    "quarantine_engine",
    "with_defaults",
]

ENGINES = (
    "MergeTree",
    "ReplacingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
    "CollapsingMergeTree",
    "VersionedCollapsingMergeTree",
    "Null",
)
_BY_LOWER = {e.lower(): e for e in ENGINES}
# TTL rules have their own small grammar: `d + INTERVAL 1 DAY DELETE WHERE x = 1`, `GROUP BY k SET …`.
_TTL_KEYWORDS = ("DELETE", "WHERE", "GROUP")


class EngineError(ValueError):
    """An engine specification that cannot be turned into DDL; the message is client-facing."""


class EngineSpec(msgspec.Struct, frozen=True):
    engine: str = "MergeTree"
    sorting_key: str | None = None
    partition_key: str | None = None
    primary_key: str | None = None
    ttl: str | None = None
    ver: str | None = None
    sign: str | None = None
    version: str | None = None
    settings: str | None = None


def _key_name(name: str) -> str:
    # Plain names stay plain (that is what Tinybird shows in engine_full); dotted ones need quoting.
    return name if DS_NAME_RE.fullmatch(name) else quote_identifier(name)


def default_engine(columns: list[Column]) -> EngineSpec:
    """SPEC §9.4 without cardinality data: eligible columns in column order."""
    stored = [c for c in columns if c.default_kind != "ALIAS" and not c.nullable]
    date_col = next((c for c in stored if c.ch_type.unwrap().name in _DATE_TYPES), None)
    others = [c for c in stored if c is not date_col and _kind(c) == "key"]
    if not others:
        others = [c for c in stored if c is not date_col and _kind(c) == "float"]
    keys = ([date_col] if date_col else []) + others[:3]
    return EngineSpec(
        sorting_key=", ".join(_key_name(c.name) for c in keys) or None,
        partition_key=f"toYear({_key_name(date_col.name)})" if date_col else None,
    )


_DATE_TYPES = frozenset({"Date", "Date32", "DateTime", "DateTime64"})


def _kind(column: Column) -> str:
    base = column.ch_type.unwrap().name
    if base in ("String", "FixedString") or base.startswith(("Int", "UInt")):
        return "key"
    return "float" if base in ("Float32", "Float64") else "other"


def _expr(what: str, text: str, allow: tuple[str, ...] = ()) -> str:
    try:
        return check_expression(text, allow=allow, allow_comma=True)
    except SqlTextError as exc:
        raise EngineError(f"Invalid {what}: {exc}") from None


def _key_expr(what: str, text: str) -> str:
    checked = _expr(what, text)
    # `a, b` → `(a, b)`: ORDER BY a, b would otherwise swallow the following clause.
    depth = 0
    for tok in tokenize(checked):
        if tok.kind == "punct":
            depth += tok.text in "([{"
            depth -= tok.text in ")]}"
            if depth == 0 and tok.text == ",":
                return f"({checked})"
    return checked


def parse_settings(text: str) -> str:
    """Normalise ``k = v, …`` with identifier keys and literal values; anything else is refused."""
    try:
        tokens = tokenize(text)
    except SqlTextError as exc:
        raise EngineError(f"Invalid ENGINE_SETTINGS: {exc}") from None
    pairs: list[str] = []
    i = 0
    while i < len(tokens):
        try:
            key = validate_identifier(tokens[i].text)
        except InvalidName as exc:
            raise EngineError(f"Invalid ENGINE_SETTINGS: {exc}") from None
        if i + 2 >= len(tokens) or tokens[i + 1].text != "=":
            raise EngineError(f"Invalid ENGINE_SETTINGS: expected '<name> = <value>' for {key!r}")
        j = i + 2
        sign = ""
        if tokens[j].text == "-" and j + 1 < len(tokens):
            sign, j = "-", j + 1
        value = tokens[j]
        literal = value.kind in ("number", "string") or (not sign and value.text.lower() in ("true", "false"))
        if not literal or (sign and value.kind != "number"):
            raise EngineError(f"Invalid ENGINE_SETTINGS: the value of {key!r} must be a literal")
        pairs.append(f"{key} = {sign}{value.text}")
        i = j + 1
        if i < len(tokens):
            if tokens[i].text != ",":
                raise EngineError(f"Invalid ENGINE_SETTINGS: expected ',' after {key!r}")
            i += 1
    if not pairs:
        raise EngineError("Invalid ENGINE_SETTINGS: it is empty")
    return ", ".join(pairs)


def _column_ref(keyword: str, name: str | None, columns: list[Column], engine: str) -> str:
    if name is None:
        raise EngineError(f"{keyword} is required by the {engine} engine")
    bare = name.strip().strip("`")
    if bare not in {c.name for c in columns}:
        raise EngineError(f"{keyword} '{bare[:100]}' is not a column of the data source")
    return quote_identifier(bare)


def canonical_engine_name(name: str) -> str:
    """``replacingmergetree`` → ``ReplacingMergeTree``; EngineError for anything not in §4.5."""
    engine = _BY_LOWER.get(name.strip().lower())
    if engine is None:
        raise EngineError(f"Unsupported engine '{name[:100]}'. Supported engines: {', '.join(ENGINES)}")
    return engine


def with_defaults(spec: EngineSpec, columns: list[Column]) -> EngineSpec:
    """Fill a missing sorting key (and partition key, if also missing) per §9.4."""
    if spec.sorting_key is not None or canonical_engine_name(spec.engine) == "Null":
        return spec
    default = default_engine(columns)
    partition = spec.partition_key if spec.partition_key is not None else default.partition_key
    return msgspec.structs.replace(spec, sorting_key=default.sorting_key, partition_key=partition)


def engine_full(spec: EngineSpec, columns: list[Column]) -> str:
    """The engine clause without ``ENGINE =`` (the API's ``engine_full`` field)."""
    engine = canonical_engine_name(spec.engine)
    params: list[str] = []
    misplaced = {
        "ENGINE_VER": spec.ver is not None and engine != "ReplacingMergeTree",
        "ENGINE_SIGN": spec.sign is not None and "Collapsing" not in engine,
        "ENGINE_VERSION": spec.version is not None and engine != "VersionedCollapsingMergeTree",
    }
    for keyword, bad in misplaced.items():
        if bad:
            raise EngineError(f"{keyword} is not valid with the {engine} engine")
    if engine == "ReplacingMergeTree" and spec.ver is not None:
        params.append(_column_ref("ENGINE_VER", spec.ver, columns, engine))
    if "Collapsing" in engine:
        params.append(_column_ref("ENGINE_SIGN", spec.sign, columns, engine))
    if engine == "VersionedCollapsingMergeTree":
        params.append(_column_ref("ENGINE_VERSION", spec.version, columns, engine))
    if engine == "Null":
        given = [k for k in ("sorting_key", "partition_key", "primary_key", "ttl", "settings") if getattr(spec, k)]
        if given:
            raise EngineError(f"ENGINE_{given[0].upper()} is not valid with the Null engine")
        return "Null"
    parts = [f"{engine}({', '.join(params)})" if params else engine]
    if spec.partition_key:
        parts.append(f"PARTITION BY {_key_expr('ENGINE_PARTITION_KEY', spec.partition_key)}")
    parts.append(f"ORDER BY {_key_expr('ENGINE_SORTING_KEY', spec.sorting_key) if spec.sorting_key else 'tuple()'}")
    if spec.primary_key:
        parts.append(f"PRIMARY KEY {_key_expr('ENGINE_PRIMARY_KEY', spec.primary_key)}")
    if spec.ttl:
        parts.append(f"TTL {_expr('ENGINE_TTL', spec.ttl, allow=_TTL_KEYWORDS)}")
    if spec.settings:
        parts.append(f"SETTINGS {parse_settings(spec.settings)}")
    return " ".join(parts)


def engine_sql(spec: EngineSpec, columns: list[Column]) -> str:
    """The full ``ENGINE = …`` clause for CREATE TABLE."""
    return f"ENGINE = {engine_full(spec, columns)}"


def _quarantine_date(columns: list[Column]) -> str:
    return "c__insertion_date" if any(c.name == "insertion_date" for c in columns) else "insertion_date"


def quarantine_columns(columns: list[Column]) -> list[Column]:
    """SPEC §6: the quarantine table's columns, in ``SELECT *`` order."""
    return [
        *(Column(c.name, "Nullable(String)") for c in columns if c.stored),
        Column("c__error_column", "Array(String)"),
        Column("c__error", "Array(String)"),
        Column("c__import_id", "Nullable(String)"),
        Column(_quarantine_date(columns), "DateTime", default_kind="DEFAULT", default_expr="now()"),
    ]


def quarantine_engine(columns: list[Column], ttl_days: int = 0) -> EngineSpec:
    """SPEC §6 engine; ``ttl_days`` > 0 adds the optional ``quarantine.ttl_days`` TTL."""
    date = _quarantine_date(columns)
    ttl = f"{date} + toIntervalDay({int(ttl_days)})" if ttl_days > 0 else None
    return EngineSpec(partition_key=f"toYear({date})", sorting_key=date, ttl=ttl)


QUARANTINE_ENGINE = EngineSpec(partition_key="toYear(insertion_date)", sorting_key="insertion_date")
