"""NDJSON body → landing rows + quarantine rows (SPEC §1.5, §4.3–4.4, §5, §6).

A :class:`Converter` is compiled once per data source schema: every column gets
its parsed json path, its §4.4 missing/null policy and a type converter from
``values``. ``convert`` then does, per line, one ``msgspec`` decode, one path
lookup and one converter call per column, and encodes good rows as JSONEachRow
for ``INSERT INTO t (columns) FORMAT JSONEachRow``. A row leaves out the keys
whose DEFAULT the engine must evaluate (``input_format_defaults_for_omitted_fields``
is on by default), so DEFAULT expressions are never re-implemented here.

Numbers are decoded with ``float_hook=decimal_number`` (a ``Decimal``): integers stay exact Python ints
of any size and every other number keeps its source digits, so Decimal and
DateTime64 columns never see a float round trip.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import msgspec

from birdhouse.schema.columns import Column
from birdhouse.schema.fastpath import JSON_WS, compile_fast_path
from birdhouse.schema.jsonpath import MISSING
from birdhouse.schema.plan import FROM_KEY, FROM_LINE, FROM_PATH, Absent
from birdhouse.schema.plan import plan as make_plan
from birdhouse.schema.values import (
    ConversionError,
    decimal_number,
    value_text,
)

__all__ = ["MAX_DETAILS", "Converted", "Converter", "line_error_message"]

MAX_DETAILS: Final = 100
_BOM: Final = b"\xef\xbb\xbf"
_LINE_TEXT_MAX: Final = 1024
_UTF8_STEP: Final = 1 << 20


@dataclass
class Converted:
    """The outcome of one body: bytes ready for the landing and quarantine tables."""

    rows: bytes
    quarantine: bytes
    successful_rows: int
    quarantined_rows: int
    details: list[dict[str, Any]] = field(default_factory=list)
    columns: tuple[str, ...] = ()


def line_error_message(line: bytes) -> str:
    """M7 for a line that is not valid JSON (shown as received, cut at 1024 characters)."""
    text = line.decode("utf-8", "replace")
    if len(text) > _LINE_TEXT_MAX:
        text = text[:_LINE_TEXT_MAX] + "…"
    return f"Line is not a valid JSON: '{text}'"


_ROOT_TYPES = {str: "string", int: "number", Decimal: "number", bool: "boolean", type(None): "null"}


def _root_message(value: Any) -> str:
    """M8 for valid JSON that is not an object."""
    kind = "list" if type(value) is list else _ROOT_TYPES.get(type(value), "null")
    return f"JSON root must be an object, but it was a {kind}"


class Converter:
    """Compiled conversion for one data source schema; reuse it for every request.

    ``lenient`` is ``types.coercion=lenient`` (§5); ``expand_json_array_lines`` is
    ``events.expand_json_array_lines`` (§1.5).
    """

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        lenient: bool = False,
        expand_json_array_lines: bool = False,
        max_line_bytes: int = 64 * 1024 * 1024,
        fast: bool = True,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self._plans = [make_plan(c, lenient) for c in columns if c.jsonpath is not None and c.stored]
        self.columns: tuple[str, ...] = tuple(p.name for p in self._plans)
        by_name = {p.name: p for p in self._plans}
        # The per-row loop unpacks plain tuples: attribute lookups are a visible share of the hot path.
        self._steps = [
            (p.name, p.source, p.key or "", p.path.extract, p.convert, p.on_missing, p.on_null, p) for p in self._plans
        ]
        # Quarantine rows carry every stored column (§6), NULL for those without a path.
        self._quarantine_columns = [(c.name, by_name.get(c.name)) for c in columns if c.stored]
        self._expand = expand_json_array_lines
        self._decoder = msgspec.json.Decoder(float_hook=decimal_number)
        self._encoder = msgspec.json.Encoder(decimal_format="number")
        # ``fast=False`` keeps to the general path: the reference the fast path is tested against.
        self._fast = compile_fast_path(self._plans, max_line_bytes) if fast else None

    def convert(self, body: bytes, *, details: bool = False) -> Converted:
        if body.startswith(_BOM):
            body = body[len(_BOM) :]
        good: list[tuple[int, dict[str, Any]]] = []
        bad: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        lines = body.split(b"\n")
        # msgspec skips keys no column reads without checking their UTF-8: a body
        # that is not valid UTF-8 takes the general path, which quarantines the bad lines (M7).
        if self._fast is not None and (body.isascii() or _is_utf8(body)):

            def general(lineno: int, line: bytes) -> None:
                self._line(lineno, line, good, bad, notes, details)

            self._fast.run(lines, good, general)
        else:
            for lineno, line in enumerate(lines, 1):
                self._line(lineno, line, good, bad, notes, details)
        rows, moved = self._encode(good)
        bad.extend(moved)
        return Converted(
            rows=rows,
            quarantine=self._encode_quarantine(bad),
            successful_rows=len(good) - len(moved),
            quarantined_rows=len(bad),
            details=notes,
            columns=self.columns,
        )

    def _line(
        self,
        lineno: int,
        line: bytes,
        good: list[tuple[int, dict[str, Any]]],
        bad: list[dict[str, Any]],
        notes: list[dict[str, Any]],
        details: bool,
    ) -> None:
        """The general path for one line (also the fast path's fallback)."""
        if not line.strip(JSON_WS):
            return
        max_line = self.max_line_bytes
        if len(line) > max_line:
            # Parsing a pathological line would hold memory and the CPU for long;
            # it is kept (quarantined, first bytes quoted), not parsed.
            quoted = line_error_message(line[:1024]).removeprefix("Line is not a valid JSON: ")
            message = f"Line exceeds {max_line} bytes and was not parsed: {quoted}"
            self._line_error(bad, notes, lineno, message, details)
            return
        try:
            obj = self._decoder.decode(line)
        except (msgspec.ValidationError, RecursionError) as exc:
            # Valid JSON that Python cannot hold: 4,300+ digit integers, extreme nesting.
            self._line_error(bad, notes, lineno, f"Unknown error when parsing NDJSON: {exc}", details)
            return
        except (msgspec.DecodeError, UnicodeDecodeError):
            self._line_error(bad, notes, lineno, line_error_message(line.rstrip(b"\r")), details)
            return
        if type(obj) is dict:
            self._row(obj, line, lineno, good, bad, notes, details)
        elif self._expand and type(obj) is list and obj and all(type(o) is dict for o in obj):
            for item in obj:
                raw = self._encoder.encode(item)
                self._row(item, raw, lineno, good, bad, notes, details)
        else:
            self._line_error(bad, notes, lineno, _root_message(obj), details)

    def _row(
        self,
        obj: dict[str, Any],
        line: bytes,
        lineno: int,
        good: list[tuple[int, dict[str, Any]]],
        bad: list[dict[str, Any]],
        notes: list[dict[str, Any]],
        details: bool,
    ) -> None:
        out: dict[str, Any] = {}
        failed: list[str] | None = None
        errors: list[str] = []
        raw: str | None = None
        for name, source, key, extract, convert, on_missing, on_null, plan in self._steps:
            if source == FROM_KEY:
                value: Any = obj.get(key, MISSING)
            elif source == FROM_PATH:
                value = extract(obj)
            elif source == FROM_LINE:
                if raw is None:
                    raw = line.rstrip(b"\r").decode()
                value = raw
            else:
                value = obj
            if value is None or value is MISSING:
                action = on_missing if value is MISSING else on_null
                if action is Absent.OMIT:
                    continue
                if action is Absent.NULL:
                    out[name] = None
                    continue
                if action is Absent.EMPTY:
                    out[name] = []
                    continue
                message = plan.ctx.missing() if action is Absent.M1 else plan.ctx.null()
            else:
                try:
                    out[name] = convert(value)
                    continue
                except ConversionError as exc:
                    message = exc.message
                except Exception as exc:  # a converter bug must not lose the row: M9
                    message = f"Unknown error when parsing NDJSON: {exc!r}"
            if failed is None:
                failed = []
            failed.append(name)
            errors.append(message)
        if failed is None:
            good.append((lineno, out))
            return
        self._quarantine(bad, notes, lineno, obj, line, failed, errors, details)

    def _quarantine(
        self,
        bad: list[dict[str, Any]],
        notes: list[dict[str, Any]],
        lineno: int,
        obj: dict[str, Any] | None,
        line: bytes,
        failed: list[str],
        errors: list[str],
        details: bool,
    ) -> None:
        row: dict[str, Any] = {}
        for name, plan in self._quarantine_columns:
            text: str | None = None
            if plan is not None and obj is not None:
                if plan.root:
                    text = line.rstrip(b"\r").decode("utf-8", "replace")
                else:
                    value = plan.path.extract(obj)
                    text = None if value is MISSING or value is None else _safe_text(value)
            row[name] = text
        row["c__error_column"] = failed
        row["c__error"] = errors
        row["c__import_id"] = None
        bad.append(row)
        if details and len(notes) < MAX_DETAILS:
            notes.append({"line": lineno, "columns": list(failed), "errors": list(errors)})

    def _line_error(
        self, bad: list[dict[str, Any]], notes: list[dict[str, Any]], lineno: int, message: str, details: bool
    ) -> None:
        self._quarantine(bad, notes, lineno, None, b"", [""], [message], details)

    def _encode(self, good: list[tuple[int, dict[str, Any]]]) -> tuple[bytes, list[dict[str, Any]]]:
        """JSONEachRow bytes of the good rows; rows that cannot be encoded become M9 quarantine rows."""
        with contextlib.suppress(Exception):  # else find the row that cannot be encoded, below
            return self._encoder.encode_lines([row for _, row in good]), []
        lines: list[bytes] = []
        moved: list[dict[str, Any]] = []
        encode = self._encoder.encode
        for lineno, row in good:
            try:
                lines.append(encode(row))
            except Exception as exc:  # pragma: no cover - decoded input always re-encodes
                q: list[dict[str, Any]] = []
                self._line_error(q, [], lineno, f"Unknown error when parsing NDJSON: {exc!r}", False)
                moved.extend(q)
        return (b"\n".join(lines) + b"\n" if lines else b""), moved

    def _encode_quarantine(self, bad: list[dict[str, Any]]) -> bytes:
        return b"".join(self._encoder.encode(row) + b"\n" for row in bad)


def _is_utf8(data: bytes) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), _UTF8_STEP):  # bounded memory: output is dropped per step
            decoder.decode(data[start : start + _UTF8_STEP])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _safe_text(value: Any) -> str | None:
    try:
        return value_text(value)
    except Exception:  # pragma: no cover - e.g. nesting deeper than the encoder's recursion limit
        return None
