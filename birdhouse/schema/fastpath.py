"""Typed decoding generated per schema: the fast path of ``Converter.convert``.

The general path decodes each line into Python dicts (numbers as ``Decimal``)
and walks the column plans one by one: a tuple unpack, a source dispatch, a
policy check and a converter call per column and row. For a schema whose
columns all read one top-level key (``$.k``, the shape of nearly every
Events API schema), this module instead builds, once per schema:

* a ``msgspec.Struct`` type with one field per key, typed so that msgspec's C
  validation *is* the conversion where it can be: ``str`` for String,
  ``int`` with the column's range for (U)Int8–64, ``float`` for Float64
  (msgspec parses numbers correctly rounded, as ``float(Decimal(text))`` does,
  and refuses out-of-range ones), ``Any`` (untyped, numbers as ``Decimal``)
  for every other type, whose §5 converter is then called as usual;
* a row loop compiled from generated Python source, with each column's
  missing/null policy written out as code, no per-column dispatch.

Any line the fast path cannot finish exactly (it does not validate against
the struct, a value is missing where that is an error, a converter raises, the
line is over the size cap or not an object) is handed to the general path,
which produces the same rows, quarantine rows and messages as if the fast path
did not exist; so the fast path only ever decides rows that are good. Rows
keep their order either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final

import msgspec

from birdhouse.schema.plan import FROM_KEY, Absent, Plan
from birdhouse.schema.types import int_range
from birdhouse.schema.values import decimal_number

__all__ = ["JSON_WS", "FastPath", "compile_fast_path"]

# Line → rows: (body lines, good rows, the general path for one line) → None.
Slow = Callable[[int, bytes], None]
RowLoop = Callable[[list[bytes], list[tuple[int, dict[str, Any]]], Slow], None]

_FAST_INTS: Final = frozenset(f"{s}Int{b}" for s in ("", "U") for b in (8, 16, 32, 64))
_DATES: Final = frozenset({"Date", "Date32", "DateTime", "DateTime64"})
# Date texts converted per column and kept: events of a batch share few distinct
# whole-second timestamps, and a dict hit costs a twentieth of converting one.
# Cleared when full (timestamps move on; old ones would never hit again).
MEMO_SIZE: Final = 4096
MEMO_TEXT_MAX: Final = len("2024-05-01T10:00:00Z")
# For a column that stores whole seconds or days, a fraction of a second changes nothing
# (`to_ticks` floors it; it plays no part in validating the rest): such texts share the memo
# entry of their whole second, so browser-style "…T10:00:00.123Z" timestamps hit it too.
_FRACTION: Final = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2})[.,][0-9]{1,9}([Zz]?)")
_WHOLE_SECOND_TYPES: Final = frozenset({"Date", "Date32", "DateTime"})
# Whitespace a blank NDJSON line may consist of (shared with the general path).
JSON_WS: Final = b" \t\r"


# Python's int-from-text limit (sys.get_int_max_str_digits); lines shorter than it cannot hold such a run.
LONG_DIGITS: Final = 4300
_DIGITS: Final = bytes.maketrans(b"123456789", b"000000000")
_DIGIT_RUN: Final = b"0" * LONG_DIGITS


class _Fallback(Exception):
    """The fast path cannot decide this row; the general path will."""


def _field_type(p: Plan) -> tuple[str, Any]:
    """(kind, msgspec field type) for one column; kind is str, int, uint64, float or any."""
    t = p.ch_type
    nullable = t.name == "Nullable"
    inner = t.inner if nullable else t
    while inner.name == "LowCardinality":
        inner = inner.inner
    kind: str = "any"
    base: Any = Any
    if inner.name == "String":
        # An object into a String is stored as its JSON text (§5): the converter writes it.
        kind, base = "str", str | dict[str, Any]
    elif inner.name in _FAST_INTS:
        lo, hi = int_range(inner.name)
        # msgspec bounds must fit int64; it decodes no int above UInt64's max anyway.
        if hi < 2**63:
            kind, base = "int", Annotated[int, msgspec.Meta(ge=lo, le=hi)]
        else:
            kind, base = "uint64", Annotated[int, msgspec.Meta(ge=lo)]
    elif inner.name == "Float64":
        kind, base = "float", float
    elif inner.name in _WHOLE_SECOND_TYPES:
        kind = "second"  # Any, converted through a memo of recent whole seconds
    elif inner.name in _DATES:
        kind = "date"  # Any, converted through a memo of recent texts
    if kind not in ("any", "date", "second") and (nullable or p.on_null is not Absent.M2):
        return kind, base | None  # null is then decided by the null policy, in code
    return kind, base


def _long_digits(line: bytes) -> bool:
    """A run of digits Python would not turn into an int. Under a key no column reads,
    msgspec's typed decode skips it unchecked, where the general path quarantines
    the line (M9): such lines are left to the general path."""
    return _DIGIT_RUN in line.translate(_DIGITS)


def _memo(memo: dict[str, Any], convert: Callable[[Any], Any], text: str, key: str | None = None) -> Any:
    value = convert(text)
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[text if key is None else key] = value
    return value


def _whole_second(memo: dict[str, Any], convert: Callable[[Any], Any], text: str) -> Any:
    """A date text for a column of whole seconds or days, through the memo of its whole second."""
    key = text
    if len(text) > MEMO_TEXT_MAX:
        m = _FRACTION.fullmatch(text)
        if m is None:
            return convert(text)
        key = m[1] + m[2]
    found = memo.get(key, memo)
    return _memo(memo, convert, text, key) if found is memo else found


def _absent_code(action: Absent, name: str) -> str:
    if action is Absent.OMIT:
        return "pass"
    if action is Absent.NULL:
        return f"row[{name!r}] = None"
    if action is Absent.EMPTY:
        return f"row[{name!r}] = []"
    return "raise _Fallback"  # M1/M2: the general path writes the message


def _row_loop(plans: Sequence[Plan], kinds: list[str], max_line: int, decode: Any) -> RowLoop:
    body = [
        "def rows(lines, good, slow):",
        "    lineno = 0",
        "    for line in lines:",
        "        lineno += 1",
        "        if not line.strip(_JSON_WS):",
        "            continue",
        f"        if len(line) > {min(LONG_DIGITS, max_line)} and (len(line) > {max_line} or long_digits(line)):",
        "            slow(lineno, line)",
        "            continue",
        "        try:",
        "            s = decode(line)",
        "            row = {}",
    ]
    env: dict[str, Any] = {
        "_JSON_WS": JSON_WS,
        "_Fallback": _Fallback,
        "UNSET": msgspec.UNSET,
        "decode": decode,
        "memo": _memo,
        "whole_second": _whole_second,
        "long_digits": _long_digits,
    }
    for i, (p, kind) in enumerate(zip(plans, kinds, strict=True)):
        # int/float: the struct's validation was the whole conversion.
        store = {
            "any": f"row[{p.name!r}] = c{i}(v)",
            "str": f"row[{p.name!r}] = v if type(v) is str else c{i}(v)",
            "uint64": f"row[{p.name!r}] = v if v <= {2**64 - 1} else c{i}(v)",
            # Only str keys (1, 1.0 and True are equal dict keys but different dates or errors),
            # and only whole-second texts: sub-second ones rarely repeat.
            "date": (
                f"row[{p.name!r}] = (m{i}.get(v) or memo(m{i}, c{i}, v)) "
                f"if type(v) is str and len(v) <= {MEMO_TEXT_MAX} else c{i}(v)"
            ),
            "second": f"row[{p.name!r}] = whole_second(m{i}, c{i}, v) if type(v) is str else c{i}(v)",
        }.get(kind, f"row[{p.name!r}] = v")
        env[f"c{i}"] = p.convert
        env[f"m{i}"] = {}
        body += [
            f"            v = s.f{i}",
            "            if v is UNSET:",
            f"                {_absent_code(p.on_missing, p.name)}",
            "            elif v is None:",
            f"                {_absent_code(p.on_null, p.name)}",
            "            else:",
            f"                {store}",
        ]
    body += [
        "        except Exception:",
        "            slow(lineno, line)",
        "            continue",
        "        good.append((lineno, row))",
    ]
    exec(compile("\n".join(body), "<birdhouse fast path>", "exec"), env)  # noqa: S102 - source built here from validated plans
    loop: RowLoop = env["rows"]
    return loop


class FastPath:
    """The generated decoder and row loop of one schema."""

    def __init__(self, plans: Sequence[Plan], max_line: int) -> None:
        typed = [_field_type(p) for p in plans]
        fields = [(f"f{i}", ftype, msgspec.UNSET) for i, (_, ftype) in enumerate(typed)]
        keys = {f"f{i}": p.key for i, p in enumerate(plans)}
        struct = msgspec.defstruct("Row", fields, rename=keys, array_like=False)  # type: ignore[arg-type]
        self.decoder = msgspec.json.Decoder(struct, float_hook=decimal_number)
        self.run = _row_loop(plans, [kind for kind, _ in typed], max_line, self.decoder.decode)


def compile_fast_path(plans: Sequence[Plan], max_line: int) -> FastPath | None:
    """None when some column does not read exactly one top-level key, two read the same key,
    or msgspec cannot name a field after a key (backslashes, quotes, control characters)."""
    keys = [p.key for p in plans]
    if not plans or any(p.source != FROM_KEY for p in plans) or len(set(keys)) != len(keys):
        return None
    try:
        return FastPath(plans, max_line)
    except (ValueError, TypeError):
        return None
