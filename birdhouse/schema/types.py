"""ClickHouse type strings as an immutable tree (SPEC §4.2).

``parse_type`` turns ``Map(String, Array(Nullable(Int32)))`` into nested
``ChType`` values whose ``sql()`` is the canonical spelling we store in the
catalog and splice into CREATE TABLE. Parsing is deliberately broader than what
ingest accepts (Enum, Tuple, AggregateFunction … parse fine) so that the
"is this allowed" question lives in one place, ``check_ingestible``, with its
own error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "REQUIRED_CREATE_SETTINGS",
    "ChType",
    "TypeParseError",
    "UnsupportedType",
    "check_ingestible",
    "int_range",
    "parse_type",
    "parse_type_prefix",
]


class TypeParseError(ValueError):
    """The text is not a syntactically valid type."""


class UnsupportedType(ValueError):
    """A well-formed type that birdhouse cannot ingest into (SPEC §4.2)."""


@dataclass(frozen=True)
class ChType:
    """One node of a type tree: ``name`` plus type, string-literal or integer arguments.

    String arguments hold the literal's *value* (``UTC``, not ``'UTC'``); ``sql()``
    re-quotes them, so a timezone can never break out of its quotes.
    """

    name: str
    args: tuple[ChType | str | int, ...] = ()

    def sql(self) -> str:
        if not self.args:
            return self.name
        parts: list[str] = []
        args, i = self.args, 0
        while i < len(args):
            arg = args[i]
            if isinstance(arg, ChType):
                parts.append(arg.sql())
            elif isinstance(arg, str):
                text = _quote(arg)
                # Enum items are written 'name' = value; keep that shape.
                nxt = args[i + 1] if i + 1 < len(args) else None
                if self.name.startswith("Enum") and isinstance(nxt, int):
                    text = f"{text} = {nxt}"
                    i += 1
                parts.append(text)
            else:
                parts.append(str(arg))
            i += 1
        return f"{self.name}({', '.join(parts)})"

    def __str__(self) -> str:
        return self.sql()

    @property
    def is_nullable(self) -> bool:
        """True for ``Nullable(T)`` and ``LowCardinality(Nullable(T))``."""
        lc = self.name == "LowCardinality" and self.args and isinstance(self.args[0], ChType)
        return (self.inner if lc else self).name == "Nullable"

    @property
    def inner(self) -> ChType:
        """The first argument as a type (element type of Array, Nullable, …)."""
        first = self.args[0] if self.args else None
        if not isinstance(first, ChType):
            raise TypeError(f"{self.sql()} has no inner type")
        return first

    def unwrap(self) -> ChType:
        """Strip LowCardinality and Nullable wrappers down to the base type."""
        node = self
        while node.name in ("LowCardinality", "Nullable") and node.args and isinstance(node.args[0], ChType):
            node = node.args[0]
        return node


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# check_ingestible admits what SPEC §4.2 admits; the engine, by default, refuses two of
# those (LowCardinality over numbers/dates, FixedString(N > 256)) as "suspicious".
# Backends apply these query settings to CREATE TABLE so both agree.
REQUIRED_CREATE_SETTINGS: dict[str, int] = {
    "allow_suspicious_low_cardinality_types": 1,
    "allow_suspicious_fixed_string_types": 1,
}

# SQL-standard spellings ClickHouse accepts case-insensitively; we store the canonical name.
_ALIASES = {
    "bool": "Bool", "boolean": "Bool", "tinyint": "Int8", "smallint": "Int16", "int": "Int32",
    "integer": "Int32", "bigint": "Int64", "float": "Float32", "real": "Float32", "double": "Float64",
    "text": "String", "varchar": "String", "char": "String", "string": "String", "uuid": "UUID",
    "date": "Date", "date32": "Date32", "datetime": "DateTime", "datetime64": "DateTime64",
    "decimal": "Decimal", "numeric": "Decimal", "json": "JSON",
}  # fmt: skip

_INTS = {f"{sign}Int{bits}": bits for sign in ("", "U") for bits in (8, 16, 32, 64, 128, 256)}
_DECIMAL_MAX_P = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}
_DATES = frozenset({"Date", "Date32", "DateTime", "DateTime64"})
_LC_DATES = ("Date", "Date32", "DateTime")
_PLAIN = frozenset({*_INTS, "Float32", "Float64", "String", "UUID", "Date", "Date32", "Bool", "JSON"})
_CANONICAL = frozenset({*_PLAIN, *_DATES, *_DECIMAL_MAX_P, "Decimal", "FixedString", "Array", "Map",
                        "Nullable", "LowCardinality"})  # fmt: skip
_TIMEZONE_RE = re.compile(r"[A-Za-z0-9_/+\-]{1,64}")

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>-?[0-9]+)|(?P<str>'(?:[^'\\]|\\.|'')*')|(?P<punct>[(),=]))"
)
_ESCAPE_RE = re.compile(r"\\(.)|''", re.DOTALL)


class _Parser:
    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def fail(self, what: str) -> TypeParseError:
        return TypeParseError(f"Invalid type {self.text.strip()[:200]!r}: {what} at position {self.pos}")

    def stuck(self) -> TypeParseError:
        rest = self.text[self.pos :].strip()
        if rest.startswith("'"):
            return self.fail("unterminated string literal")
        return self.fail(f"unexpected character {rest[0]!r}" if rest else "unexpected end")

    def peek(self) -> tuple[str, str] | None:
        m = _TOKEN_RE.match(self.text, self.pos)
        if m is None or m.lastgroup is None:
            return None
        return m.lastgroup, m.group(m.lastgroup)

    def take(self) -> tuple[str, str]:
        m = _TOKEN_RE.match(self.text, self.pos)
        if m is None or m.lastgroup is None:
            raise self.stuck()
        self.pos = m.end()
        return m.lastgroup, m.group(m.lastgroup)

    def parse_type(self, depth: int = 0) -> ChType:
        # Depth cap: a hostile `Array(Array(...` a million deep must not hit the recursion limit.
        if depth > 32:
            raise self.fail("nesting too deep")
        kind, value = self.take()
        if kind != "ident":
            raise self.fail(f"expected a type name, got {value!r}")
        alias = None if value in _CANONICAL else _ALIASES.get(value.lower())
        args: list[ChType | str | int] = []
        if self.peek() == ("punct", "("):
            self.take()
            if self.peek() == ("punct", ")"):
                self.take()
            else:
                while True:
                    self.parse_arg(args, depth)
                    _, sep = self.take()
                    if sep == ")":
                        break
                    if sep != ",":
                        raise self.fail(f"expected ',' or ')', got {sep!r}")
        # VARCHAR(255) and friends: ClickHouse ignores the length, so do we.
        if alias == "String":
            args = []
        return ChType(alias or value, tuple(args))

    def parse_arg(self, args: list[ChType | str | int], depth: int) -> None:
        nxt = self.peek()
        if nxt is None:
            raise self.stuck()
        kind, value = nxt
        if kind == "int":
            self.take()
            args.append(int(value))
        elif kind == "str":
            self.take()
            args.append(_ESCAPE_RE.sub(lambda m: m.group(1) or "'", value[1:-1]))
            if self.peek() == ("punct", "="):  # Enum8('a' = 1)
                self.take()
                kind, value = self.take()
                if kind != "int":
                    raise self.fail(f"expected an integer after '=', got {value!r}")
                args.append(int(value))
        else:
            args.append(self.parse_type(depth + 1))


def parse_type_prefix(text: str, start: int = 0) -> tuple[ChType, int]:
    """Parse the type that begins at ``start``; return it and the offset just past it.

    Used by the column parser, which only knows where a type ends once it has parsed it.
    """
    parser = _Parser(text, start)
    return parser.parse_type(), parser.pos


def parse_type(text: str) -> ChType:
    """Parse a whole type string; trailing text is an error."""
    if not text.strip():
        raise TypeParseError("Invalid type: it is empty")
    parsed, end = parse_type_prefix(text)
    if text[end:].strip():
        raise TypeParseError(f"Invalid type {text.strip()[:200]!r}: unexpected {text[end:].strip()[:50]!r}")
    return parsed


def int_range(name: str) -> tuple[int, int]:
    """Inclusive (min, max) of an Int8…Int256 / UInt8…UInt256 type name."""
    bits = _INTS.get(name)
    if bits is None:
        raise ValueError(f"{name!r} is not an integer type")
    if name.startswith("U"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _invalid(t: ChType, why: str) -> UnsupportedType:
    return UnsupportedType(f"Invalid type {t.sql()}: {why}")


def check_ingestible(t: ChType, *, allow_json: bool = True) -> None:
    """Raise UnsupportedType unless ``t`` is in SPEC §4.2 with sane parameters."""
    name, args = t.name, t.args
    if name in _PLAIN and not (name == "JSON" and not allow_json):
        if args:
            raise _invalid(t, f"{name} takes no parameters")
    elif name == "FixedString":
        if len(args) != 1 or not isinstance(args[0], int) or args[0] <= 0:
            raise _invalid(t, "FixedString needs one length N > 0")
    elif name == "DateTime":
        if args and (len(args) != 1 or not isinstance(args[0], str)):
            raise _invalid(t, "DateTime takes only an optional timezone")
        _check_tz(t, args)
    elif name == "DateTime64":
        if not 1 <= len(args) <= 2 or not isinstance(args[0], int) or not 0 <= args[0] <= 9:
            raise _invalid(t, "DateTime64 needs a precision between 0 and 9")
        if len(args) == 2 and not isinstance(args[1], str):
            raise _invalid(t, "the DateTime64 timezone must be a string")
        _check_tz(t, args[1:])
    elif name == "Decimal":
        ints = [a for a in args if isinstance(a, int)]
        if not 1 <= len(args) <= 2 or len(ints) != len(args):
            raise _invalid(t, "Decimal needs a precision and an optional scale")
        p, s = ints[0], ints[1] if len(ints) == 2 else 0
        if not 1 <= p <= 76 or not 0 <= s <= p:
            raise _invalid(t, "Decimal precision must be 1–76 and scale 0–precision")
    elif name in _DECIMAL_MAX_P:
        if len(args) != 1 or not isinstance(args[0], int) or not 0 <= args[0] <= _DECIMAL_MAX_P[name]:
            raise _invalid(t, f"{name} needs one scale between 0 and {_DECIMAL_MAX_P[name]}")
    elif name in ("Array", "Nullable", "LowCardinality"):
        if len(args) != 1 or not isinstance(args[0], ChType):
            raise _invalid(t, f"{name} needs exactly one type argument")
        inner = args[0]
        if name == "Nullable" and inner.name in ("Nullable", "Array", "Map", "LowCardinality", "JSON"):
            raise _invalid(t, f"Nullable cannot wrap {inner.name}")
        if name == "LowCardinality" and not _low_cardinality_ok(inner):
            raise _invalid(t, "LowCardinality only wraps String, FixedString, numbers, dates or Nullable of those")
        check_ingestible(inner, allow_json=allow_json)
    elif name == "Map":
        if len(args) != 2 or not isinstance(args[0], ChType) or not isinstance(args[1], ChType):
            raise _invalid(t, "Map needs a key type and a value type")
        key = args[0].inner if args[0].name == "LowCardinality" and args[0].args else args[0]
        # Bool is a valid engine key type, but JSONEachRow can never read a
        # Bool map key (keys arrive quoted), so rows could never be ingested.
        if key.name not in _INTS and key.name not in ("String", "FixedString", "UUID", *_DATES):
            raise _invalid(t, f"{args[0].sql()} cannot be a Map key")
        check_ingestible(args[0], allow_json=allow_json)
        check_ingestible(args[1], allow_json=allow_json)
    else:
        raise UnsupportedType(f"Unsupported type: {t.sql()}")


def _check_tz(t: ChType, args: tuple[ChType | str | int, ...]) -> None:
    if args and (not isinstance(args[0], str) or _TIMEZONE_RE.fullmatch(args[0]) is None):
        raise _invalid(t, "the timezone is not a valid time zone name")


def _low_cardinality_ok(inner: ChType) -> bool:
    # Numbers and dates are valid, but the engine refuses them unless the session sets
    # allow_suspicious_low_cardinality_types=1 (backends must). DateTime64 it never accepts.
    if inner.name == "Nullable" and inner.args and isinstance(inner.args[0], ChType):
        inner = inner.args[0]
    return inner.name in _INTS or inner.name in ("String", "FixedString", "Float32", "Float64", *_LC_DATES)
