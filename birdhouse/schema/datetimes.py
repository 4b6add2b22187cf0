"""Dates and times at ingest (SPEC §5.1): parse, range-check, format for the engine.

Everything here works on a UTC instant held as two integers, ``(seconds, nanos)``
with ``0 <= nanos < 10**9``, so nanosecond strings (OTel, Vector) and fractional
epochs keep every digit (D14) and nothing goes through a float.

The output forms are the ones the engine reads the same way whatever
``date_time_input_format`` and the column timezone are (verified against chDB
in tests/schema/test_convert_engine.py): ``Date``/``Date32`` as ``'YYYY-MM-DD'``,
``DateTime`` as a JSON integer epoch, ``DateTime64(P)`` as a JSON *number*
epoch with exactly P fractional digits (the engine reads it as decimal text,
negative values included; a quoted epoch is misread by the best-effort parser).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation

import msgspec

__all__ = [
    "DateKind",
    "civil_from_days",
    "date_kind",
    "days_from_civil",
    "decimal_to_nanos",
    "format_date",
    "format_datetime",
    "parse_datetime_text",
]

NANOS = 1_000_000_000
_DAY = 86_400

# ISO 8601 / RFC 3339 extended form: date, optional time with `T`/`t`/space, 1–9 fraction digits and an
# offset `Z`, `±hh:mm`, `±hhmm` or `±hh`. ASCII digits only (`\d` would take Arabic-Indic digits).
_TZ = r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?"
_EXTENDED_RE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[Tt ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?" + _TZ + ")?"
)
# Basic form YYYYMMDDThhmmss[.f] (SPEC: MAY); the `T` is required so bare numbers stay numbers.
_BASIC_RE = re.compile(
    r"(?P<y>[0-9]{4})(?P<mo>[0-9]{2})(?P<d>[0-9]{2})[Tt](?P<h>[0-9]{2})(?P<mi>[0-9]{2})(?P<s>[0-9]{2})"
    r"(?:[.,](?P<f>[0-9]{1,9}))?" + _TZ
)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of :func:`days_from_civil`."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


# Events of one batch mostly share their timestamps' text (many events per
# second): a cache hit skips the regex and the calendar arithmetic.
@functools.lru_cache(maxsize=16384)
def parse_datetime_text(text: str) -> tuple[int, int] | None:
    """``(epoch seconds, nanos)`` of an ISO 8601 / RFC 3339 string, or None if it is not one.

    Naive values are UTC (D15); offsets are applied to get the UTC instant.
    """
    m = _EXTENDED_RE.fullmatch(text) or _BASIC_RE.fullmatch(text)
    if m is None:
        return None
    ys, mos, ds, hs, mis, ss, frac, _z, sign, ohs, oms = m.groups()  # one call: named lookups cost more
    y, mo, d = int(ys), int(mos), int(ds)
    if not 1 <= mo <= 12 or not 1 <= d <= (29 if mo == 2 and _leap(y) else _MONTH_DAYS[mo - 1]):
        return None
    h = int(hs) if hs is not None else 0
    mi = int(mis) if mis is not None else 0
    sec = int(ss) if ss is not None else 0
    if h > 23 or mi > 59 or sec > 59:
        return None
    nanos = int(frac.ljust(9, "0")) if frac else 0
    seconds = days_from_civil(y, mo, d) * _DAY + h * 3600 + mi * 60 + sec
    if sign is not None:
        oh, om = int(ohs), int(oms or 0)
        if oh > 23 or om > 59:
            return None
        offset = oh * 3600 + om * 60
        seconds -= offset if sign == "+" else -offset
    return seconds, nanos


# Enough digits that every value inside any column range is exact; flooring in the context
# itself means an over-long literal can never be rounded *up* across a boundary.
_FLOOR_CTX = Context(prec=80, rounding=ROUND_FLOOR, Emax=999_999, Emin=-999_999)
_NS_QUANTUM = Decimal(1).scaleb(-9)


def decimal_to_nanos(value: Decimal, shift: int = 0) -> int | None:
    """floor(value × 10^(9 + shift)) as an int; None when far outside any date range.

    ``shift=-3`` reads the value as milliseconds.
    """
    if not value.is_finite():
        return None
    if value.is_zero():
        return 0
    if value.adjusted() + shift > 15:  # > 10^16 s is out of every range, as seconds or ms
        return None
    if value.adjusted() + shift < -12:  # below a nanosecond: floor is 0 or -1
        return -1 if value.is_signed() else 0
    try:
        scaled = value.scaleb(shift, _FLOOR_CTX).quantize(_NS_QUANTUM, context=_FLOOR_CTX)
        return int(scaled.scaleb(9, _FLOOR_CTX))
    except InvalidOperation:  # pragma: no cover - guarded by the exponent checks above
        return None


@dataclass(frozen=True)
class DateKind:
    """Range and output form of one date type, all in UTC epoch units.

    ``precision`` is the number of fractional digits stored (0 for DateTime,
    P for DateTime64(P), -1 for the day-resolution Date and Date32).
    """

    name: str
    precision: int
    min_ticks: int
    max_ticks: int
    min_text: str
    max_text: str
    ticks_per_second: int = field(init=False)
    _nanos_per_tick: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ticks_per_second", 10 ** max(self.precision, 0))
        object.__setattr__(self, "_nanos_per_tick", NANOS // self.ticks_per_second)

    def seconds_in_range(self, seconds: int) -> bool:
        """Whether an epoch-seconds value lies in the range (the seconds-vs-ms decision)."""
        return self.to_ticks(seconds, 0) is not None

    def to_ticks(self, seconds: int, nanos: int) -> int | None:
        """The stored integer (days, seconds or 10^-P s), or None when out of range."""
        if self.precision < 0:
            ticks = seconds // _DAY
        else:
            ticks = seconds * self.ticks_per_second + nanos // self._nanos_per_tick
        return ticks if self.min_ticks <= ticks <= self.max_ticks else None

    def output(self, ticks: int) -> object:
        """The JSONEachRow value for stored ``ticks`` (see the module docstring)."""
        if self.precision < 0:
            return format_date(ticks)
        if self.precision == 0:
            return ticks
        sign = "-" if ticks < 0 else ""
        whole, frac = divmod(abs(ticks), self.ticks_per_second)
        return msgspec.Raw(f"{sign}{whole}.{frac:0{self.precision}d}".encode())


def format_date(days: int) -> str:
    y, m, d = civil_from_days(days)
    return f"{y:04d}-{m:02d}-{d:02d}"


def format_datetime(seconds: int, nanos: int = 0, precision: int = 0) -> str:
    """``YYYY-MM-DD hh:mm:ss[.f…]`` (UTC) with ``precision`` fractional digits."""
    days, rem = divmod(seconds, _DAY)
    text = f"{format_date(days)} {rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}"
    if precision > 0:
        text += "." + f"{nanos:09d}"[:precision]
    return text


_MIN_1900 = days_from_civil(1900, 1, 1) * _DAY
_END_2299 = days_from_civil(2300, 1, 1) * _DAY - 1
_INT64_MAX = (1 << 63) - 1


def _datetime64(precision: int) -> DateKind:
    tps = 10**precision
    max_ticks = min(_END_2299 * tps + tps - 1, _INT64_MAX)
    max_s, max_frac = divmod(max_ticks, tps)
    return DateKind(
        name=f"DateTime64({precision})",
        precision=precision,
        min_ticks=_MIN_1900 * tps,
        max_ticks=max_ticks,
        min_text=format_datetime(_MIN_1900, 0, precision),
        max_text=format_datetime(max_s, max_frac * (NANOS // tps), precision),
    )


_KINDS: dict[str, DateKind] = {
    "Date": DateKind("Date", -1, 0, days_from_civil(2149, 6, 6), "1970-01-01", "2149-06-06"),
    "Date32": DateKind("Date32", -1, _MIN_1900 // _DAY, days_from_civil(2299, 12, 31), "1900-01-01", "2299-12-31"),
    "DateTime": DateKind("DateTime", 0, 0, (1 << 32) - 1, "1970-01-01 00:00:00", format_datetime((1 << 32) - 1)),
    **{f"DateTime64({p})": _datetime64(p) for p in range(10)},
}


def date_kind(name: str, precision: int | None = None) -> DateKind:
    """The DateKind of ``Date``, ``Date32``, ``DateTime`` or ``DateTime64`` (with ``precision``)."""
    key = f"DateTime64({precision if precision is not None else 3})" if name == "DateTime64" else name
    return _KINDS[key]
