"""Per-type value converters (SPEC §5) compiled once per column.

``compile_converter`` turns a column type into a plain function ``value -> output``
that either returns the JSONEachRow value the engine stores or raises
:class:`ConversionError` carrying the exact §5.2 message. Closures capture the
type's parameters (ranges, scale, precision) and the message context, so the
per-row cost is a couple of ``type()`` checks; nothing is re-parsed per row.

Input values are what ``msgspec`` decodes with ``float_hook=Decimal``: ``str``,
``int`` (exact, arbitrary size), ``Decimal`` (every non-integer number, with its
source digits), ``bool``, ``list``, ``dict`` and ``None``; ``MISSING`` appears
inside lists produced by a ``[:]`` path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

import msgspec

from birdhouse.schema.datetimes import DateKind, date_kind, decimal_to_nanos, parse_datetime_text
from birdhouse.schema.jsonpath import MISSING
from birdhouse.schema.types import ChType, int_range

__all__ = [
    "ConversionError",
    "DateError",
    "MessageContext",
    "ValueConverter",
    "compact_json",
    "compile_converter",
    "decimal_number",
    "jtype",
    "value_text",
]

ValueConverter = Callable[[Any], Any]

_ENCODER = msgspec.json.Encoder(decimal_format="number")


def decimal_number(text: str) -> Decimal:
    """The ``float_hook`` of every JSON decoder here: the number with its source digits.

    ``Decimal`` cannot hold exponents past ±999,999,999,999,999,999 and raises;
    valid JSON such as ``1e1000000000000000000`` then saturates as a float would:
    ``±Infinity``, or ``±0`` when the mantissa is zero or the exponent negative.
    """
    try:
        return Decimal(text)
    except ArithmeticError:
        mantissa, _, exponent = text.lower().partition("e")
        sign = "-" if mantissa.startswith("-") else ""
        if exponent.startswith("-") or not mantissa.strip("+-0."):
            return Decimal(sign + "0")
        return Decimal(sign + "Infinity")


def compact_json(value: Any) -> str:
    """Compact JSON text; numbers keep their source digits (Decimal), MISSING becomes null."""
    if type(value) is list and any(v is MISSING for v in value):  # a `[:]` path's elements
        value = [None if v is MISSING else v for v in value]
    return _ENCODER.encode(value).decode()


def value_text(value: Any) -> str:
    """The §5.2 ``<value>`` placeholder and the §6 quarantine text: strings as is, else compact JSON."""
    return value if type(value) is str else compact_json(value)


_JTYPES: dict[type, str] = {
    str: "string", int: "number", float: "number", Decimal: "number", bool: "boolean",
    list: "array", dict: "object", type(None): "null",
}  # fmt: skip


def jtype(value: Any) -> str:
    """The §5.2 ``<jtype>`` of a decoded JSON value."""
    return _JTYPES.get(type(value), "null")


class ConversionError(Exception):
    """A value the column cannot take; ``message`` is the §5.2 text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DateError(ConversionError):
    """An unparsable or out-of-range date: NULL instead of quarantine in Nullable columns (§5)."""


class ElementError(ConversionError):
    """A bad number in an ``Array(Nullable(number))`` element: NULL instead of quarantine (§5)."""


@dataclass(frozen=True)
class MessageContext:
    """What every message of one column names."""

    column: str
    path: str

    def missing(self) -> str:  # M1
        return (
            f"Strict type checking failed. Object does not have column '{self.column}', you should send a "
            "value or recreate the table with a Nullable column type. "
            f"While accessing jsonpath '{self.path}'"
        )

    def null(self) -> str:  # M2
        return (
            f"Strict type checking failed. Null value not allowed on column '{self.column}'. "
            f"While accessing jsonpath '{self.path}'"
        )

    def wrong_type(self, value: Any, type_text: str) -> ConversionError:  # M3
        return ConversionError(
            f"Strict type checking failed. Value {value_text(value)} on column '{self.column}' is a "
            f"{jtype(value)} when a {type_text} was expected. While accessing jsonpath '{self.path}'"
        )

    def out_of_bounds(self, value: Any, type_text: str, lo: object, hi: object) -> str:  # M4
        return (
            f"Value {value_text(value)} out of bounds for type '{type_text}' in column '{self.column}' "
            f"with jsonpath '{self.path}'. Value must be between {lo} and {hi}"
        )

    def too_long(self, value: str, n: int) -> ConversionError:  # M5
        return ConversionError(
            f"Value '{value}' is too long for type 'FixedString({n})' in column '{self.column}' "
            f"with jsonpath '{self.path}'"
        )

    def parser_failed(self, what: str) -> str:  # M6 (DateTime), M10 (UUID), M11 (Decimal)
        return f"Error {what} parser failed. While processing column '{self.column}' with jsonpath '{self.path}'"


_INT_TEXT_RE = re.compile(r"-?[0-9]+")
_FLOAT_TEXT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMAL_TEXT_RE = _FLOAT_TEXT_RE
_UUID_RE = re.compile(
    r"(?:urn:uuid:)?(\{)?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})(\})?",
    re.IGNORECASE,
)
# Largest finite Float32 plus half an ulp: anything below rounds to a finite float32.
_FLOAT32_LIMIT = 3.4028235677973366e38
_FLOAT_BOUNDS = {
    "Float32": ("-3.4028234663852886e38", "3.4028234663852886e38"),
    "Float64": ("-1.7976931348623157e308", "1.7976931348623157e308"),
}
_DECIMAL_MAX_P = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}
_INT_BASES = frozenset(f"{s}Int{b}" for s in ("", "U") for b in (8, 16, 32, 64, 128, 256))
_NUMBER_BASES = _INT_BASES | {"Float32", "Float64", "Decimal", *_DECIMAL_MAX_P}
_DATE_BASES = frozenset({"Date", "Date32", "DateTime", "DateTime64"})


def compile_converter(
    t: ChType, ctx: MessageContext, *, lenient: bool = False, type_text: str | None = None
) -> ValueConverter:
    """The converter for a non-null value of type ``t`` (null and absence are the caller's, §4.4).

    ``type_text`` is the ``<Type>`` of messages; wrappers pass their own text down so a
    ``Nullable(Int32)`` column says ``Nullable(Int32)``. Array and Map elements use their own type.
    """
    text = type_text if type_text is not None else t.sql()
    name = t.name
    if name == "LowCardinality":
        return compile_converter(t.inner, ctx, lenient=lenient, type_text=text)
    if name == "Nullable":
        return _nullable(t.inner, ctx, lenient, text)
    if name in ("String", "JSON"):
        return _string(ctx, text, lenient) if name == "String" else _json(ctx, text)
    if name == "FixedString":
        return _fixed_string(ctx, text, _int_arg(t, 0))
    if name in _INT_BASES:
        return _integer(ctx, text, *int_range(name), lenient)
    if name in ("Float32", "Float64"):
        return _float(ctx, text, name, lenient)
    if name == "Decimal" or name in _DECIMAL_MAX_P:
        if name == "Decimal":
            precision, scale = _int_arg(t, 0), (_int_arg(t, 1) if len(t.args) > 1 else 0)
        else:
            precision, scale = _DECIMAL_MAX_P[name], _int_arg(t, 0)
        return _decimal(ctx, text, precision, scale)
    if name == "Bool":
        return _bool(ctx, text, lenient)
    if name == "UUID":
        return _uuid(ctx, text)
    if name in _DATE_BASES:
        dt64_precision = _int_arg(t, 0) if name == "DateTime64" and t.args else None
        return _date(ctx, text, date_kind(name, dt64_precision))
    if name == "Array":
        return _array(t.inner, ctx, lenient, text)
    if name == "Map":
        key, val = t.args[0], t.args[1]
        if not isinstance(key, ChType) or not isinstance(val, ChType):
            raise TypeError(f"{t.sql()}: Map needs two types")
        return _map(key, val, ctx, lenient, text)
    raise TypeError(f"cannot ingest into {t.sql()}")


def _int_arg(t: ChType, i: int) -> int:
    arg = t.args[i]
    if not isinstance(arg, int):
        raise TypeError(f"{t.sql()}: argument {i} must be an integer")
    return arg


def _nullable(inner: ChType, ctx: MessageContext, lenient: bool, text: str) -> ValueConverter:
    conv = compile_converter(inner, ctx, lenient=lenient, type_text=text)
    soft = inner.name in _DATE_BASES  # dates: unparsable/out of range → NULL (§5)

    def nullable(value: Any) -> Any:
        if value is None or value is MISSING:
            return None
        if not soft:
            return conv(value)
        try:
            return conv(value)
        except DateError:
            return None

    return nullable


def _string(ctx: MessageContext, text: str, lenient: bool) -> ValueConverter:
    def string(value: Any) -> Any:
        if type(value) is str:
            return value
        if type(value) is dict or lenient:
            return compact_json(value)
        raise ctx.wrong_type(value, text)

    return string


def _json(ctx: MessageContext, text: str) -> ValueConverter:
    def json_object(value: Any) -> Any:
        if type(value) is dict:
            return value  # the engine's JSON type reads the object itself
        raise ctx.wrong_type(value, text)

    return json_object


def _fixed_string(ctx: MessageContext, text: str, n: int) -> ValueConverter:
    def fixed_string(value: Any) -> Any:
        if type(value) is not str:
            raise ctx.wrong_type(value, text)
        if len(value) > n or (not value.isascii() and len(value.encode()) > n):  # bytes ≥ chars
            raise ctx.too_long(value, n)
        return value

    return fixed_string


# More digits than this cannot be in any integer range (UInt256 max has 78 digits); checking first
# keeps int() away from 100,000-digit strings.
_MAX_INT_DIGITS = 80


def _integer(ctx: MessageContext, text: str, lo: int, hi: int, lenient: bool) -> ValueConverter:
    def out_of_bounds(value: Any) -> ConversionError:
        return ElementError(ctx.out_of_bounds(value, text, lo, hi))

    def integer(value: Any) -> Any:
        kind = type(value)
        if kind is int:
            number = value
        elif kind is bool:
            return 1 if value else 0
        elif kind is str:
            if _INT_TEXT_RE.fullmatch(value) is None:
                raise ElementError(ctx.wrong_type(value, text).message)
            digits = value.lstrip("-").lstrip("0") or "0"
            if len(digits) > _MAX_INT_DIGITS:
                raise out_of_bounds(value)
            number = -int(digits) if value[0] == "-" else int(digits)
        elif kind is Decimal and lenient and _integral(value):
            number = int(value)  # lenient: integral floats such as 1.0
        else:
            raise ElementError(ctx.wrong_type(value, text).message)
        if number < lo or number > hi:
            raise out_of_bounds(value)
        return number

    return integer


def _integral(value: Decimal) -> bool:
    return value.adjusted() <= _MAX_INT_DIGITS and value == value.to_integral_value()


def _float(ctx: MessageContext, text: str, name: str, lenient: bool) -> ValueConverter:
    limit = _FLOAT32_LIMIT if name == "Float32" else float("inf")
    lo, hi = _FLOAT_BOUNDS[name]

    def to_float(value: Any) -> Any:
        kind = type(value)
        source = value
        if kind is Decimal or kind is int:
            pass
        elif kind is str and lenient and _FLOAT_TEXT_RE.fullmatch(value):
            source = Decimal(value)  # exact text → correctly rounded float, like a JSON number
        else:
            raise ElementError(ctx.wrong_type(value, text).message)
        try:
            number = float(source)
        except OverflowError:  # an integer literal beyond 1.8e308
            number = float("inf")
        if not -limit < number < limit:
            raise ElementError(ctx.out_of_bounds(value, text, lo, hi))
        return number

    return to_float


def _decimal(ctx: MessageContext, text: str, precision: int, scale: int) -> ValueConverter:
    int_digits = precision - scale
    quantum = Decimal(1).scaleb(-scale)
    context = Context(prec=precision + 2, rounding=ROUND_HALF_EVEN)
    bound = Decimal(10**precision - 1).scaleb(-scale, context)
    lo, hi = f"{bound.copy_negate():f}", f"{bound:f}"
    zero = f"{Decimal(0).scaleb(-scale):f}"

    def out_of_bounds(value: Any) -> ConversionError:
        return ElementError(ctx.out_of_bounds(value, text, lo, hi))

    def decimal(value: Any) -> Any:
        kind = type(value)
        if kind is Decimal:
            number = value
        elif kind is int:
            if value.bit_length() > 260:  # > 10^78: beyond every precision, skip the conversion
                raise out_of_bounds(value)
            number = Decimal(value)
        elif kind is str:
            if _DECIMAL_TEXT_RE.fullmatch(value) is None:
                raise ElementError(ctx.parser_failed("Decimal"))
            number = Decimal(value)
        else:
            raise ElementError(ctx.wrong_type(value, text).message)
        if number.is_zero():
            return zero
        if number.adjusted() >= int_digits:
            raise out_of_bounds(value)
        try:
            rounded = number.quantize(quantum, context=context)
        except InvalidOperation:  # pragma: no cover - the adjusted() check keeps it in precision
            raise out_of_bounds(value) from None
        if rounded.is_zero():
            return zero  # not "-0.00"
        if rounded.copy_abs() > bound:  # 999.995 → 1000.00 in Decimal(5, 2)
            raise out_of_bounds(value)
        return f"{rounded:f}"  # a quoted decimal: the engine parses the text, never a float

    return decimal


def _bool(ctx: MessageContext, text: str, lenient: bool) -> ValueConverter:
    def to_bool(value: Any) -> Any:
        kind = type(value)
        if kind is bool:
            return value
        if kind is int and (value == 0 or value == 1):
            return value == 1
        if lenient and kind is str and value in ("true", "false"):
            return value == "true"
        raise ctx.wrong_type(value, text)

    return to_bool


def _uuid(ctx: MessageContext, text: str) -> ValueConverter:
    def to_uuid(value: Any) -> Any:
        if type(value) is not str:
            raise ctx.wrong_type(value, text)
        m = _UUID_RE.fullmatch(value)
        if m is None or (m[1] is None) != (m[7] is None):
            raise ConversionError(ctx.parser_failed("UUID"))
        return f"{m[2]}-{m[3]}-{m[4]}-{m[5]}-{m[6]}".lower()

    return to_uuid


def _date(ctx: MessageContext, text: str, kind: DateKind) -> ValueConverter:
    def out_of_bounds(value: Any) -> DateError:
        return DateError(ctx.out_of_bounds(value, text, kind.min_text, kind.max_text))

    def to_date(value: Any) -> Any:
        vkind = type(value)
        if vkind is str:
            instant = parse_datetime_text(value)
            if instant is None:
                raise DateError(ctx.parser_failed("DateTime"))
            ticks = kind.to_ticks(*instant)
        elif vkind is int or vkind is Decimal:
            ticks = _epoch_ticks(value, kind)
        else:
            raise ctx.wrong_type(value, text)
        if ticks is None:
            raise out_of_bounds(value)
        return kind.output(ticks)

    return to_date


def _epoch_ticks(value: int | Decimal, kind: DateKind) -> int | None:
    """Epoch seconds, or milliseconds when out of range as seconds (§5.1)."""
    if type(value) is int:
        if kind.seconds_in_range(value):
            return kind.to_ticks(value, 0)
        seconds, millis = divmod(value, 1000)
        return kind.to_ticks(seconds, millis * 1_000_000)
    assert isinstance(value, Decimal)
    for shift in (0, -3):
        nanos = decimal_to_nanos(value, shift)
        if nanos is None:
            continue
        seconds, rest = divmod(nanos, 1_000_000_000)
        if shift == 0 and not kind.seconds_in_range(seconds):
            continue
        return kind.to_ticks(seconds, rest)
    return None


def _element_policy(inner: ChType) -> type[ConversionError] | None:
    """Which element errors become NULL inside an array: dates and numbers of Nullable elements."""
    if not inner.is_nullable:
        return None
    base = inner.unwrap().name
    if base in _NUMBER_BASES:
        return ElementError
    return DateError if base in _DATE_BASES else None


def _array(inner: ChType, ctx: MessageContext, lenient: bool, text: str) -> ValueConverter:
    conv = compile_converter(inner, ctx, lenient=lenient)
    nullable = inner.is_nullable
    soft = _element_policy(inner)
    null_message = ctx.null()

    def array(value: Any) -> Any:
        if type(value) is not list:
            raise ctx.wrong_type(value, text)
        out: list[Any] = []
        for item in value:
            if item is None or item is MISSING:
                if not nullable:
                    raise ConversionError(null_message)
                out.append(None)
            elif soft is None:
                out.append(conv(item))
            else:
                try:
                    out.append(conv(item))
                except soft:
                    out.append(None)
        return out

    return array


def _map(key: ChType, val: ChType, ctx: MessageContext, lenient: bool, text: str) -> ValueConverter:
    key_conv = compile_converter(key, ctx, lenient=lenient)
    key_base = key.unwrap().name
    val_conv = compile_converter(val, ctx, lenient=lenient)
    nullable = val.is_nullable
    null_message = ctx.null()

    def key_text(k: str) -> str:
        if key_base == "Bool" and k in ("true", "false", "0", "1"):
            return "true" if k in ("true", "1") else "false"
        out = key_conv(k)
        if type(out) is str:
            return out
        if key_base in ("DateTime", "DateTime64"):
            # Object keys are always quoted, and a quoted epoch is read as one only with 10 integer
            # digits in both date_time_input_format modes: zero-pad (pre-1970 DateTime64 keys are
            # read by the basic parser only; see the report).
            whole, dot, frac = (bytes(out).decode() if type(out) is msgspec.Raw else str(out)).partition(".")
            return (whole if whole.startswith("-") else whole.zfill(10)) + dot + frac
        return str(out)

    def to_map(value: Any) -> Any:
        if type(value) is not dict:
            raise ctx.wrong_type(value, text)
        out: dict[str, Any] = {}
        for k, v in value.items():
            if v is None:
                if not nullable:
                    raise ConversionError(null_message)
                out[key_text(k)] = None
            else:
                out[key_text(k)] = val_conv(v)
        return out

    return to_map
