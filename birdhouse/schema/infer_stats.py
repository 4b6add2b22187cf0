"""What one pass over the sampled rows learns about each json path (SPEC §9.2).

``PathStats`` are accumulated by ``Sampler.add_row`` and turned into a column
type by ``scalar_type``. Values are decoded exactly as the ingest Converter
decodes them (``msgspec`` with ``float_hook=Decimal``), so "is this an integer",
"how many decimals" and "does this string parse as a date" are answered on the
same values, by the same parser, that ingestion will later see.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Final

from birdhouse.schema.datetimes import date_kind, parse_datetime_text

__all__ = ["MAX_DEPTH", "PathStats", "Sampler", "json_path_step", "scalar_type"]

# Deeper nesting than this is not walked: the path is dropped instead of risking recursion limits.
MAX_DEPTH: Final = 64
# Distinct values kept per path for the §9.4 cardinality ordering; past it the count is a floor.
_DISTINCT_CAP: Final = 10_000
_DATE_SHARE: Final = 0.8
_INT16_ABS: Final = 1 << 10
_INT32_ABS: Final = 1 << 26
_FLOAT32_ABS: Final = 1 << 16
_FLOAT32_DECIMALS: Final = 3
_FLOAT64_MAX: Final = Decimal("1.7976931348623157e308")
_INT_TYPES: Final = ((63, "Int64"), (127, "Int128"), (255, "Int256"))

# Keys written in dot form; anything else uses the bracket form `['…']` (SPEC §4.3).
_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_$@]+")
_DATE_ONLY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# The widest range any inferred date type has (Date32 / DateTime64: 1900–2299); a string outside
# it is "not a date" for the 80 % rule, because no inferred column could store it.
_WIDEST = date_kind("DateTime64", 3)
_DATE = date_kind("Date")
_DATETIME = date_kind("DateTime")


def json_path_step(key: str) -> str:
    """The path step for an object key: ``.key``, or ``.['key']`` with ``\\`` and ``'`` escaped."""
    if _PLAIN_KEY_RE.fullmatch(key):
        return "." + key
    return ".['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"


class PathStats:
    """Everything the sample says about one path.

    ``container`` is set for array-element paths (``$.a[:]``, ``$.a[:].b``): the path of the
    array itself, whose row presence and element count decide defaults and element nullability.
    """

    __slots__ = (
        "container",
        "date_fraction",
        "date_max",
        "date_min",
        "date_time",
        "dates",
        "distinct",
        "elements",
        "has_fraction",
        "int_max",
        "int_min",
        "kinds",
        "max_abs",
        "max_decimals",
        "nulls",
        "strings",
        "values",
    )  # fmt: skip

    def __init__(self, container: str | None) -> None:
        self.container = container
        self.kinds: set[str] = set()  # JSON types seen: string number boolean object array (+ "deep")
        self.values = 0  # non-null scalars (each array element counts) or, for arrays, rows holding one
        self.nulls = 0
        self.elements = 0  # array paths: elements over all rows
        self.int_min = 0
        self.int_max = 0
        self.has_fraction = False
        self.max_decimals = 0
        self.max_abs: int | Decimal = 0
        self.strings = 0
        self.dates = 0
        self.date_time = False
        self.date_fraction = False
        self.date_min: int | None = None  # epoch seconds of the parsed dates
        self.date_max: int | None = None
        self.distinct: set[Any] | None = None if container is not None else set()

    def add_scalar(self, value: Any) -> None:
        kind = type(value)
        self.values += 1
        if kind is str:
            self.kinds.add("string")
            self._string(value)
        elif kind is bool:
            self.kinds.add("boolean")
        elif kind is int:
            self.kinds.add("number")
            self.int_min = min(self.int_min, value)
            self.int_max = max(self.int_max, value)
            self.max_abs = max(self.max_abs, abs(value))
        else:
            assert kind is Decimal
            self.kinds.add("number")
            self.has_fraction = True
            exponent = value.as_tuple().exponent
            # Digits after the point as written (1.50 has 2): the source text, never a float repr.
            self.max_decimals = max(self.max_decimals, -exponent if isinstance(exponent, int) else 0)
            self.max_abs = max(self.max_abs, abs(value))
        if self.distinct is not None and len(self.distinct) < _DISTINCT_CAP:
            self.distinct.add(value)

    def _string(self, text: str) -> None:
        self.strings += 1
        instant = parse_datetime_text(text)
        if instant is None or _WIDEST.to_ticks(*instant) is None:
            return
        self.dates += 1
        if not _DATE_ONLY_RE.fullmatch(text):
            self.date_time = True
            # The accepted grammar has a `.` or `,` only before fractional seconds.
            self.date_fraction = self.date_fraction or "." in text or "," in text
        seconds = instant[0]
        self.date_min = seconds if self.date_min is None else min(self.date_min, seconds)
        self.date_max = seconds if self.date_max is None else max(self.date_max, seconds)


def scalar_type(stats: PathStats) -> tuple[str | None, str]:
    """The §9.2 type of a path with exactly one scalar JSON type: ``(type, "")`` or ``(None, reason)``."""
    (kind,) = stats.kinds
    if kind == "boolean":
        return "UInt8", ""
    if kind == "string":
        if stats.dates <= _DATE_SHARE * stats.strings:
            return "String", ""
        lo, hi = stats.date_min, stats.date_max
        # More than 80 % parsed, so at least one did and both bounds are set.
        assert lo is not None
        assert hi is not None
        if stats.date_fraction:
            return "DateTime64(3)", ""
        # Widening beyond the SPEC's type only when a sampled date would be out of its range:
        # a 1950 birthday in a `Date` column would be quarantined (M4) on every ingest.
        if stats.date_time:
            in_range = _DATETIME.seconds_in_range(lo) and _DATETIME.seconds_in_range(hi)
            return ("DateTime" if in_range else "DateTime64(0)"), ""
        in_range = _DATE.seconds_in_range(lo) and _DATE.seconds_in_range(hi)
        return ("Date" if in_range else "Date32"), ""
    if stats.has_fraction:
        if stats.max_abs > _FLOAT64_MAX:
            return None, "number out of the Float64 range"
        small = stats.max_decimals <= _FLOAT32_DECIMALS and stats.max_abs < _FLOAT32_ABS
        return ("Float32" if small else "Float64"), ""
    biggest = max(abs(stats.int_min), abs(stats.int_max))
    if biggest < _INT16_ABS:
        return "Int16", ""
    if biggest < _INT32_ABS:
        return "Int32", ""
    for bits, name in _INT_TYPES:
        # Past Int64 the SPEC has no type; a wider signed one keeps those rows out of quarantine.
        if -(1 << bits) <= stats.int_min and stats.int_max < 1 << bits:
            return name, ""
    return None, "integer out of the Int256 range"


class Sampler:
    """Accumulates PathStats over rows; paths are keyed by their json path text."""

    def __init__(self) -> None:
        self.rows = 0
        self.paths: dict[str, PathStats] = {}

    def add_row(self, row: dict[str, Any]) -> None:
        self.rows += 1
        self._object(row, "$", None, 0)

    def _stats(self, path: str, container: str | None) -> PathStats:
        stats = self.paths.get(path)
        if stats is None:
            stats = self.paths[path] = PathStats(container)
        return stats

    def _object(self, obj: dict[str, Any], prefix: str, container: str | None, depth: int) -> None:
        for key, value in obj.items():
            self._value(prefix + json_path_step(key), value, container, depth + 1)

    def _value(self, path: str, value: Any, container: str | None, depth: int) -> None:
        stats = self._stats(path, container)
        if depth > MAX_DEPTH:
            stats.kinds.add("deep")
        elif value is None:
            stats.nulls += 1
        elif type(value) is dict:
            stats.kinds.add("object")
            self._object(value, path, container, depth)
        elif type(value) is list:
            stats.kinds.add("array")
            if container is not None:
                return  # an array inside an array: never a column, so not walked
            stats.values += 1
            stats.elements += len(value)
            inner = path + "[:]"
            for item in value:
                self._value(inner, item, path, depth + 1)
        else:
            stats.add_scalar(value)
