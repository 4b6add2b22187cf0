"""``POST /v0/events`` (SPEC §1–2).

The handler follows SPEC §1.4's processing order literally: the first failing
step decides the response. Error bodies are ``text/plain`` with the exact
texts of SPEC §2.2 (the tb CLI treats any JSON body as success), success
bodies are ``{"successful_rows":N,"quarantined_rows":M}`` in that key order.
Everything before the backend accepted the rows stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from birdhouse.backends import BackendError
from birdhouse.catalog.access import AuthError, Principal
from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.http.auth import presented_token, runtime
from birdhouse.http.compression import BodyError, decode, encoding_of, read_wire
from birdhouse.pipeline.dedup import Entry, body_key, idempotency_key
from birdhouse.pipeline.deliver import Transient, insert_quarantine
from birdhouse.pipeline.records import AcceptedBatch
from birdhouse.runtime import Runtime
from birdhouse.schema.columns import is_json_typed
from birdhouse.schema.convert import Converted
from birdhouse.wal import Ticket, WalError

log = logging.getLogger("birdhouse.events")

EXPOSED = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"
UNAVAILABLE = "Service temporarily unavailable, no data ingested, please retry again"
FORMATS = ("ndjson", "json")


class EventsError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def cors_headers(request: Request) -> dict[str, str]:
    allowed = [o.strip() for o in runtime(request).settings.events.cors_allow_origins.split(",") if o.strip()]
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED}
    origin = request.headers.get("origin")
    if origin and origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Expose-Headers": EXPOSED}
    return {}


def _text(status: int, message: str, headers: dict[str, str]) -> Response:
    return Response(message + "\n", status_code=status, headers=headers, media_type="text/plain; charset=utf-8")


def _success(
    status: int, ok: int, quarantined: int, details: list[dict[str, object]] | None, headers: dict[str, str]
) -> Response:
    body: dict[str, object] = {"successful_rows": ok, "quarantined_rows": quarantined}
    if details is not None:
        body["quarantine"] = details
    return Response(msgspec.json.encode(body), status_code=status, headers=headers, media_type="application/json")


def _authenticate(request: Request) -> Principal:
    token = presented_token(request)
    if token is None:
        raise EventsError(403, "Invalid token")
    try:
        principal = runtime(request).catalog.authenticate(token)
    except AuthError as exc:
        raise EventsError(exc.status, "Workspace not found" if exc.status == 404 else "Invalid token") from None
    if principal.workspace is None:
        raise EventsError(403, "Invalid token")
    return principal


def _resolve(request: Request, principal: Principal, name: str) -> DataSource:
    assert principal.workspace is not None
    rt = runtime(request)
    datasource = rt.catalog.find_datasource(principal.workspace.id, name)
    if datasource is None:
        base = name.removesuffix("_quarantine")
        if base != name and rt.catalog.find_datasource(principal.workspace.id, base) is not None:
            raise EventsError(400, "Quarantine Data Sources cannot be appended to")
        if rt.settings.compat.mode == "forward":
            raise EventsError(
                404,
                f"Data Source '{name}' does not exist. Data Sources in Forward Workspaces are created "
                "through deployments.",
            )
        if not principal.can_create():
            raise EventsError(403, "Invalid token for DS autocreation")
        raise EventsError(
            404, f"Data Source '{name}' does not exist; create it first (automatic creation is not available yet)"
        )
    if not principal.can_append(datasource.id):
        raise EventsError(403, "Invalid token")
    if not is_json_typed(datasource.columns):
        raise EventsError(400, "Data Source must be of type JSON")
    return datasource


# Bash's $'…' examples in Tinybird's docs leave "\" + newline between tokens.
_CONTINUATION = re.compile(rb"\\\r?\n")


def json_document_to_ndjson(body: bytes) -> bytes:
    """``format=json``: one JSON document (object or array of objects),
    possibly pretty-printed, becomes one NDJSON line per object."""
    if not body.strip():
        return b""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        try:
            document = msgspec.json.decode(_CONTINUATION.sub(b"\n", body))
        except msgspec.DecodeError:
            # Let the converter quarantine it as one invalid line (M7).
            return body.replace(b"\n", b" ")
    items = document if isinstance(document, list) else [document]
    return b"\n".join(msgspec.json.encode(item) for item in items)


@dataclass
class Prepared:
    """A request that passed every check before acceptance (SPEC §1.4 1–9)."""

    workspace: Workspace
    datasource: DataSource
    body: bytes
    wait: bool
    details: bool


async def _prepare(request: Request) -> Prepared:
    settings = runtime(request).settings.events
    principal = _authenticate(request)
    name = (request.query_params.get("name") or "").strip()
    if not name:
        raise EventsError(400, "Missing 'name' parameter")
    fmt = (request.query_params.get("format") or "ndjson").strip().lower()
    if fmt not in FORMATS:
        raise EventsError(501, f"Unimplemented format {request.query_params.get('format')}")
    datasource = _resolve(request, principal, name)
    try:
        encoding = encoding_of(request.headers.get("content-encoding"))
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_request_bytes:
            raise BodyError(413, f"Request Entity Too Large: body exceeds {settings.max_request_bytes} bytes")
        wire = await read_wire(request.stream(), settings.max_request_bytes)
        body = await run_in_threadpool(decode, wire, encoding, settings.max_decompressed_bytes)
    except BodyError as exc:
        raise EventsError(exc.status, exc.message) from None
    if fmt == "json":
        body = json_document_to_ndjson(body)
    assert principal.workspace is not None
    return Prepared(
        workspace=principal.workspace,
        datasource=datasource,
        body=body,
        wait=(request.query_params.get("wait") or "").lower() == "true",
        details=(request.query_params.get("quarantine_details") or "").lower() == "true",
    )


def _dedup_key(request: Request, prepared: Prepared) -> str:
    dedup = runtime(request).settings.dedup
    header = request.headers.get("idempotency-key")
    if dedup.idempotency_header and header:
        return idempotency_key(prepared.workspace.id, prepared.datasource.id, header)
    if dedup.body_hash:
        return body_key(prepared.workspace.id, prepared.datasource.id, prepared.body)
    return ""


async def _answer_duplicate(request: Request, prepared: Prepared, entry: Entry, cors: dict[str, str]) -> Response:
    rt = runtime(request)
    status = 202
    if prepared.wait:
        if entry.seq == 0 or rt.flusher.flushed_through >= entry.seq:
            status = 200
        else:
            outcome = await rt.flusher.wait_delivered(
                Ticket(entry.seq, 0), entry.request_id, rt.settings.events.wait_timeout_ms / 1000
            )
            status = 200 if outcome is not None and outcome.committed else 202
    headers = {**cors, "X-Birdhouse-Deduplicated": "true"}
    return _success(status, entry.successful_rows, entry.quarantined_rows, None, headers)


async def _accept(request: Request, prepared: Prepared, dedup_key: str, cors: dict[str, str]) -> Response:
    rt = runtime(request)
    settings = rt.settings.events
    converted = await run_in_threadpool(rt.ingestor.convert, prepared.datasource, prepared.body, prepared.details)
    shown = converted.details if prepared.details else None
    if not converted.successful_rows and not converted.quarantined_rows:
        return _success(200 if prepared.wait else 202, 0, 0, shown, cors)
    unavailable = {"Retry-After": str(settings.retry_after_503_s)}
    if not rt.accepting or rt.flusher.backend_down_for() > rt.settings.flush.backend_down_deadline_s:
        raise EventsError(503, UNAVAILABLE, unavailable)
    request_id = uuid.uuid4().hex
    if rt.settings.wal.unsafe_ack_before_write:
        _unsafe_accept_later(rt, prepared, converted, request_id)
        return _success(202, converted.successful_rows, converted.quarantined_rows, shown, cors)
    try:
        ticket, batch = await run_in_threadpool(
            rt.ingestor.accept, prepared.workspace, prepared.datasource, converted, request_id, dedup_key
        )
    except WalError as exc:
        log.warning("WAL refused a batch for %s: %s", prepared.datasource.name, exc)
        rt.flusher.kick()  # it probes the disk and resets the WAL once writes work again
        raise EventsError(503, UNAVAILABLE, unavailable) from None
    # Accepted: from here on only 2xx (or E21/E22), never a "retry" status.
    if dedup_key:
        rt.dedup.remember(batch, ticket.seq)
    rt.flusher.note(converted.successful_rows + converted.quarantined_rows, len(batch.rows) + len(batch.quarantine))
    if converted.quarantined_rows:
        # The tb CLI reads <ds>_quarantine right after the response (SPEC §8.2).
        await _insert_quarantine_now(request, batch)
    status = 202
    if prepared.wait:
        outcome = await rt.flusher.wait_delivered(ticket, request_id, settings.wait_timeout_ms / 1000)
        if outcome is not None and outcome.committed:
            status = 200
    return _success(status, converted.successful_rows, converted.quarantined_rows, shown, cors)


_background: set[asyncio.Task[None]] = set()


def _unsafe_accept_later(rt: Runtime, prepared: Prepared, converted: Converted, request_id: str) -> None:
    """The crash harness's negative control (wal.unsafe_ack_before_write): the
    rows reach the WAL only after the answer, so a kill -9 can lose them."""

    async def later() -> None:
        await asyncio.sleep(0.3)
        await run_in_threadpool(rt.ingestor.accept, prepared.workspace, prepared.datasource, converted, request_id)
        rt.flusher.note(converted.successful_rows, len(converted.rows))

    task = asyncio.create_task(later())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def ingest(request: Request) -> Response:
    cors = cors_headers(request)
    try:
        prepared = await _prepare(request)
        dedup_key = _dedup_key(request, prepared)
        if not dedup_key:
            return await _accept(request, prepared, "", cors)
        index = runtime(request).dedup
        await index.reserve(dedup_key)
        try:
            entry = index.lookup(dedup_key)
            if entry is not None:
                return await _answer_duplicate(request, prepared, entry, cors)
            return await _accept(request, prepared, dedup_key, cors)
        finally:
            index.release(dedup_key)
    except EventsError as exc:
        return _text(exc.status, exc.message, {**cors, **exc.headers})
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("unexpected error in /v0/events (ref %s)", reference)
        return _text(500, f"Internal server error, no data ingested (ref {reference})", cors)


async def _insert_quarantine_now(request: Request, batch: AcceptedBatch) -> None:
    rt = runtime(request)
    try:
        await run_in_threadpool(insert_quarantine, rt.backend, rt.catalog, batch)
    except (BackendError, Transient) as exc:
        # Still accepted: the flush inserts them (same dedup token).
        log.warning("early quarantine insert failed, the flush will retry: %s", exc)


async def preflight(request: Request) -> Response:
    headers = cors_headers(request)
    if headers:
        headers.pop("Access-Control-Expose-Headers", None)
        headers["Access-Control-Allow-Methods"] = "POST"
        requested = request.headers.get("access-control-request-headers")
        if requested:
            headers["Access-Control-Allow-Headers"] = requested
        headers["Access-Control-Max-Age"] = "600"
    return Response(b"", status_code=200, headers=headers)


async def not_allowed(request: Request) -> Response:
    return _text(405, "Method Not Allowed", {"Allow": "POST, OPTIONS", **cors_headers(request)})


routes = [
    Route(path, endpoint, methods=methods)
    for path in ("/v0/events", "/v0/events/")
    for endpoint, methods in (
        (ingest, ["POST"]),
        (preflight, ["OPTIONS"]),
        (not_allowed, ["GET", "PUT", "DELETE", "PATCH"]),
    )
]
