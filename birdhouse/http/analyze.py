"""``POST /v0/analyze`` (SPEC §9.3): infer a schema from an NDJSON sample, without creating anything.

The body is the raw sample (the tb CLI posts the first MiB of a file, usually cut
mid-line: the partial last line is skipped like any invalid line; gzip/zstd bodies
are inflated), or a form whose ``ndjson`` or ``file`` field holds it (multipart or
urlencoded). ``url`` and ``csv`` are refused with a 400. It is sampled exactly as auto-create
samples an events body (§9.1), so ``/v0/analyze`` shows the schema that sending the
same data to ``/v0/events`` would create. The preview rows go through the ingest
Converter, so what is shown is what would be stored.
"""

from __future__ import annotations

import urllib.parse
from decimal import Decimal
from typing import Any, Final

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from birdhouse.catalog.autocreate import INVALID_DATA
from birdhouse.http.auth import runtime, workspace_principal
from birdhouse.http.compression import GZIP_MAGIC, ZSTD_MAGIC, BodyError, decode, encoding_of
from birdhouse.http.errors import ApiError
from birdhouse.schema.columns import Column
from birdhouse.schema.convert import Converter
from birdhouse.schema.datetimes import decimal_to_nanos, format_datetime
from birdhouse.schema.infer import DEFAULT_MAX_COLUMNS, Inference, infer_schema, sample_body
from birdhouse.schema.types import ChType
from birdhouse.schema.values import decimal_number

__all__ = ["INVALID_DATA", "PREVIEW_ROWS", "REMOTE_URLS", "analysis_json", "analyze", "preview", "routes"]

# Used until the app's settings grow an `inference` section (then read from it).
SAMPLE_INITIAL_BYTES: Final = 65_536
SAMPLE_MAX_BYTES: Final = 10 * 1024 * 1024
PREVIEW_ROWS: Final = 10
REMOTE_URLS: Final = "Analyzing remote URLs is disabled on this server; send the data in the body"
_DECODER: Final = msgspec.json.Decoder(float_hook=decimal_number)


def _limits(request: Request) -> tuple[int, int, int]:
    section = getattr(runtime(request).settings, "inference", None)
    return (
        int(getattr(section, "sample_initial_bytes", SAMPLE_INITIAL_BYTES)),
        int(getattr(section, "sample_max_bytes", SAMPLE_MAX_BYTES)),
        int(getattr(section, "max_columns", DEFAULT_MAX_COLUMNS)),
    )


async def _read_capped(request: Request, cap: int) -> bytes:
    """At most ``cap`` bytes of the body: analysis needs a sample, not the whole file."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        parts.append(chunk)
        size += len(chunk)
        if size >= cap:
            break
    return b"".join(parts)


def _pick(fields: dict[str, Any]) -> Any:
    """The sample field of a form, after refusing what this server does not analyze."""
    if fields.get("url") is not None:
        raise ApiError(400, REMOTE_URLS)
    if fields.get("csv") is not None:
        raise ApiError(400, "CSV analysis is not supported")
    item = fields.get("ndjson") or fields.get("file")
    if item is None:
        raise ApiError(400, INVALID_DATA)
    return item


async def _multipart_sample(request: Request, cap: int) -> bytes:
    form = await request.form(max_part_size=cap)
    try:
        item = _pick(dict(form.items()))
        if isinstance(item, UploadFile):
            return await item.read(cap)
        return str(item).encode()[:cap]
    finally:
        await form.close()


def _urlencoded_sample(body: bytes, cap: int) -> bytes:
    # `curl --data-binary @events.ndjson` labels raw NDJSON as a form: a body that starts like
    # JSON is the sample itself, never a form (no form field name starts with `{`).
    if body.lstrip()[:1] in (b"{", b"["):
        return body[:cap]
    if len(body) > cap:
        raise ApiError(413, f"Form bodies are limited to {cap} bytes")
    fields = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return str(_pick(fields)).encode()[:cap]


async def _sample(request: Request, cap: int) -> bytes:
    if request.query_params.get("url") is not None:
        raise ApiError(400, REMOTE_URLS)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _multipart_sample(request, cap)
    body = await _read_capped(request, cap + 1)
    if content_type == "application/x-www-form-urlencoded":
        return _urlencoded_sample(body, cap)
    try:
        encoding = encoding_of(request.headers.get("content-encoding"))
        if encoding != "identity" or body.startswith((GZIP_MAGIC, ZSTD_MAGIC)):
            # A compressed body cannot be cut: it must arrive whole and inflate within the cap.
            if len(body) > cap:
                raise ApiError(413, f"Compressed analysis samples are limited to {cap} bytes")
            return decode(body, encoding, cap)
    except BodyError as exc:
        raise ApiError(exc.status, exc.message) from None
    return body[:cap]  # cut: the last line is then usually partial, and skipped as invalid


def _display(value: Any, ch_type: ChType) -> Any:
    """A converted value as the engine would show it: dates as text, numbers as JSON numbers."""
    if value is None:
        return None
    name = ch_type.name
    if name == "Nullable":
        return _display(value, ch_type.inner)
    if name == "Array":
        return [_display(v, ch_type.inner) for v in value]
    if name == "DateTime" and isinstance(value, int):
        return format_datetime(value)
    if name == "DateTime64":
        precision = ch_type.args[0] if ch_type.args and isinstance(ch_type.args[0], int) else 3
        nanos = decimal_to_nanos(Decimal(value)) or 0
        seconds, rest = divmod(nanos, 1_000_000_000)
        return format_datetime(seconds, rest, precision)
    if isinstance(value, Decimal):
        return float(value)
    return value


def preview(columns: list[Column], lines: list[bytes]) -> list[dict[str, Any]]:
    """The first sampled rows, converted for storage and decoded for display."""
    converted = Converter(columns).convert(b"\n".join(lines[:PREVIEW_ROWS]))
    rows: list[dict[str, Any]] = []
    for line in converted.rows.splitlines():
        stored = _DECODER.decode(line)
        # A key the converter left out takes its DEFAULT in the engine: `[]` for inferred arrays.
        rows.append({c.name: _display(stored[c.name], c.ch_type) if c.name in stored else _omitted(c) for c in columns})
    return rows


def _omitted(column: Column) -> Any:
    return [] if column.ch_type.name == "Array" else None


def analysis_json(inference: Inference) -> dict[str, Any]:
    columns = []
    for c in inference.columns:
        pct = inference.present_pct[c.name]
        columns.append(
            {
                "path": c.jsonpath,
                "recommended_type": c.type,
                # 1 rather than 1.0 for whole ratios, as Tinybird shows them.
                "present_pct": int(pct) if pct == int(pct) else round(pct, 4),
                "name": c.name,
            }
        )
    return {
        "analysis": {"columns": columns, "schema": inference.schema},
        "preview": {
            "meta": [{"name": c.name, "type": c.type} for c in inference.columns],
            "data": preview(inference.columns, inference.lines),
        },
    }


async def analyze(request: Request) -> Response:
    workspace_principal(request)  # any valid workspace token: analysis creates nothing
    initial, maximum, max_columns = _limits(request)
    sample = await _sample(request, maximum)

    def run() -> dict[str, Any] | None:
        inference = sample_body(sample, initial, maximum, lambda b: infer_schema(b, max_columns=max_columns))
        return analysis_json(inference) if inference is not None else None

    result = await run_in_threadpool(run)
    if result is None:
        raise ApiError(400, INVALID_DATA)
    return Response(msgspec.json.encode(result), media_type="application/json")


routes = [
    Route("/v0/analyze", analyze, methods=["POST"]),
    Route("/v0/analyze/", analyze, methods=["POST"]),
]
