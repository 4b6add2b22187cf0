"""Schema inference from sampled NDJSON (SPEC §9.1 sampling, §9.2 rules, §9.4 engine).

``infer_schema`` walks every leaf path of the sampled objects (``infer_stats``),
decides each path's column or the reason it has none, orders and names the
columns, and picks the default engine from sampled cardinality. The output is
plain ``Column`` values with ``json:`` paths, so the auto-created data source,
``/v0/analyze`` and ``parse_schema`` all speak the same schema text.

Two things the SPEC leaves open are settled here, both so that the rows that
were sampled ingest without quarantine:

- Arrays cannot be ``Nullable``; an array absent (or null) in some sampled row
  gets ``DEFAULT []`` instead, the array counterpart of ``Nullable``.
- Types are widened only when a sampled value would not fit the SPEC's type:
  integers past Int64 → Int128/Int256, dates before 1970 or after the
  Date/DateTime range → Date32/DateTime64(0).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from birdhouse.schema.columns import Column
from birdhouse.schema.engine import EngineSpec
from birdhouse.schema.infer_stats import MAX_DEPTH, PathStats, Sampler, scalar_type
from birdhouse.schema.names import MAX_NAME_LENGTH, RESERVED_COLUMN_NAMES
from birdhouse.schema.values import decimal_number

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "DroppedPath",
    "Inference",
    "column_name",
    "infer_schema",
    "sample_body",
    "unique_names",
]

DEFAULT_MAX_COLUMNS: Final = 10_000
_BOM: Final = b"\xef\xbb\xbf"
_NOT_NAME_RE = re.compile(r"[^A-Za-z0-9_]")
_DATE_BASES: Final = ("Date", "Date32", "DateTime", "DateTime64")
# Decoded exactly like the ingest Converter: ints stay ints, other numbers keep their digits.
_DECODER: Final = msgspec.json.Decoder(float_hook=decimal_number)


@dataclass(frozen=True)
class DroppedPath:
    """A path seen in the sample that gives no column, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Inference:
    """The inferred schema. ``present_pct`` and ``cardinality`` are keyed by column name.

    ``present_pct`` is non-null values per sampled row (array elements each count, so it can
    exceed 1: Tinybird's analyze output shows 3 for a 3-element array in a one-row sample).
    ``cardinality`` is the distinct sampled values of non-array columns (capped at 10,000).
    """

    columns: list[Column]
    present_pct: dict[str, float]
    cardinality: dict[str, int]
    dropped: list[DroppedPath]
    engine: EngineSpec
    rows: int
    lines: list[bytes] = field(default_factory=list, repr=False)

    @property
    def schema(self) -> str:
        """The §4.1 schema text (names unquoted, as Tinybird shows it); parse_schema reads it back."""
        return ", ".join(_schema_sql(c) for c in self.columns)


def _schema_sql(column: Column) -> str:
    # Inferred names are always plain identifiers, so they need no backticks.
    text = f"{column.name} {column.type} `json:{column.jsonpath}`"
    return f"{text} {column.default_kind} {column.default_expr}" if column.default_kind else text


def column_name(path: str) -> str:
    """SPEC §9.2 name of a json path, rules applied in the SPEC's order; then made a valid §4.6 name."""
    name = path.removeprefix("$.")
    for old in (".", "-", "[:]"):
        name = name.replace(old, "_")
    name = name.replace("['", "").replace("']", "").replace("$", "DOLLAR_SIGN_")
    name = name.removesuffix("_")
    name = _NOT_NAME_RE.sub("_", name)
    if name[:1].isdigit():
        name = "_" + name
    if not name:
        name = "_"  # e.g. the key "" or "_": the rules above leave nothing
    if name.lower() in RESERVED_COLUMN_NAMES:
        name = "_" + name
    return name[:MAX_NAME_LENGTH]


def unique_names(names: list[str]) -> list[str]:
    """Later duplicates get ``_2``, ``_3`` …, skipping any suffixed name another column has naturally."""
    taken = set(names)
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name in seen:
            n = 2
            while (candidate := f"{name[: MAX_NAME_LENGTH - len(str(n)) - 1]}_{n}") in taken:
                n += 1
            name = candidate
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out


@dataclass(frozen=True)
class _Candidate:
    path: str
    type: str
    default: str | None
    present: float
    cardinality: int | None


def _decide(path: str, stats: PathStats, sampler: Sampler) -> _Candidate | DroppedPath | None:
    """The column of one path, the reason it has none, or None when it silently has none
    (objects, and the array container whose elements carry the column)."""
    kinds = stats.kinds
    if "deep" in kinds:
        return DroppedPath(path, f"nested deeper than {MAX_DEPTH} levels")
    if not kinds:
        return DroppedPath(path, "only null values")
    if len(kinds) > 1:
        return DroppedPath(path, f"more than one JSON type: {', '.join(sorted(kinds))}")
    if kinds == {"object"}:
        return None
    if "`" in path:
        return DroppedPath(path, "a key with a backtick cannot be written in a json path annotation")
    rows = sampler.rows
    if stats.container is None:
        if kinds == {"array"}:
            return DroppedPath(path + "[:]", "only empty arrays") if stats.elements == 0 else None
        base, reason = scalar_type(stats)
        if base is None:
            return DroppedPath(path, reason)
        col_type = base if stats.values == rows else f"Nullable({base})"
        distinct = stats.distinct
        return _Candidate(path, col_type, None, stats.values / rows, len(distinct) if distinct is not None else 0)
    array = sampler.paths[stats.container]
    if array.kinds != {"array"}:
        return DroppedPath(path, f"{stats.container} is not always an array")
    if kinds == {"array"}:
        return DroppedPath(path + "[:]", "arrays of arrays are not supported")
    base, reason = scalar_type(stats)
    if base is None:
        return DroppedPath(path, reason)
    # An element that is null or lacks the sub-path reads as NULL (SPEC §4.3).
    element = base if stats.values == array.elements else f"Nullable({base})"
    default = None if array.values == rows else "[]"
    return _Candidate(path, f"Array({element})", default, stats.values / rows, None)


def _engine(columns: list[Column], cardinality: dict[str, int]) -> EngineSpec:
    """SPEC §9.4 with sampled cardinality: lowest first, ties by column order, Float only as a last resort."""
    plain = [c for c in columns if not c.nullable and c.ch_type.name != "Array"]
    date = next((c for c in plain if c.ch_type.name in _DATE_BASES), None)

    def keys(pick: Callable[[str], bool]) -> list[Column]:
        found = [(cardinality.get(c.name, 0), i, c) for i, c in enumerate(plain) if pick(c.ch_type.name)]
        return [c for _, _, c in sorted(found, key=lambda t: (t[0], t[1]))[:3]]

    others = keys(lambda t: t == "String" or t.startswith(("Int", "UInt"))) or keys(lambda t: t.startswith("Float"))
    names = ([date.name] if date else []) + [c.name for c in others]
    return EngineSpec(
        sorting_key=", ".join(names) or None,
        partition_key=f"toYear({date.name})" if date else None,
    )


def _sample_lines(sample: bytes) -> tuple[Sampler, list[bytes]]:
    sampler = Sampler()
    lines: list[bytes] = []
    for line in sample.removeprefix(_BOM).split(b"\n"):
        if not line.strip():
            continue
        try:
            row = _DECODER.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
            continue  # invalid lines are skipped: ingestion quarantines them later (M7)
        if type(row) is dict:
            sampler.add_row(row)
            lines.append(line)
    return sampler, lines


def infer_schema(sample: bytes, *, max_columns: int = DEFAULT_MAX_COLUMNS) -> Inference:
    """Infer columns from NDJSON ``sample`` per SPEC §9.2; no columns when nothing usable was sampled."""
    sampler, lines = _sample_lines(sample)
    candidates: list[_Candidate] = []
    dropped: list[DroppedPath] = []
    if sampler.rows:
        for path, stats in sampler.paths.items():
            decided = _decide(path, stats, sampler)
            if isinstance(decided, _Candidate):
                candidates.append(decided)
            elif decided is not None:
                dropped.append(decided)
    candidates.sort(key=lambda c: (-c.present, c.path))
    limit = max(max_columns, 0)
    dropped += [DroppedPath(c.path, f"more than {limit} columns") for c in candidates[limit:]]
    kept = candidates[:limit]
    names = unique_names([column_name(c.path) for c in kept])
    columns = [
        Column(name, c.type, c.path, default_kind="DEFAULT" if c.default else None, default_expr=c.default)
        for name, c in zip(names, kept, strict=True)
    ]
    cardinality = {n: c.cardinality for n, c in zip(names, kept, strict=True) if c.cardinality is not None}
    return Inference(
        columns=columns,
        present_pct={n: c.present for n, c in zip(names, kept, strict=True)},
        cardinality=cardinality,
        dropped=sorted(dropped, key=lambda d: d.path),
        engine=_engine(columns, cardinality),
        rows=sampler.rows,
        lines=lines,
    )


def sample_body(
    body: bytes, initial: int, maximum: int, infer: Callable[[bytes], Inference] = infer_schema
) -> Inference | None:
    """SPEC §9.1 sampling: the first ``initial`` bytes cut at the last ``\\n``, doubling up to
    ``maximum`` until at least one column is inferred. None when no sample gives a column."""
    size = max(1, min(initial, maximum))
    tried = -1
    while True:
        # Cut after the last newline in the first `size` bytes; none at all (-1) gives an empty sample.
        chunk = body if size >= len(body) else body[: body.rfind(b"\n", 0, size) + 1]
        if len(chunk) != tried:  # a doubling that reached no new newline changes nothing
            tried = len(chunk)
            inference = infer(chunk)
            if inference.columns:
                return inference
        if size >= len(body) or size >= maximum:
            return None
        size = min(size * 2, maximum)
