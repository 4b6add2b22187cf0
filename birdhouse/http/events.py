"""``POST /v0/events`` (SPEC §1–2).

The handler follows SPEC §1.4's processing order literally: the first failing
step decides the response. Error bodies are ``text/plain`` with the exact
texts of SPEC §2.2 (the tb CLI treats any JSON body as success); success
bodies are ``{"successful_rows":N,"quarantined_rows":M}`` in that key order.
Nothing is stored before acceptance (the WAL group commit); after it, the
answer is a 2xx.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from dataclasses import dataclass

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from birdhouse.catalog.autocreate import AutocreateError
from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.http.auth import header, query_param, runtime
from birdhouse.http.events_input import (
    INLINE_BYTES,
    UNAVAILABLE,
    EventsError,
    authenticate,
    check_encoding,
    parameters,
    read_body,
    resolve,
)
from birdhouse.http.limits import Refused
from birdhouse.ids import new_request_id
from birdhouse.pipeline.accept import Unavailable, accept
from birdhouse.pipeline.dedup import Entry, body_key, idempotency_key
from birdhouse.pipeline.deliver import Failure
from birdhouse.runtime import Runtime
from birdhouse.schema.convert import Converted
from birdhouse.wal import Ticket

log = logging.getLogger("birdhouse.events")

EXPOSED = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"


@functools.lru_cache(maxsize=8)
def _origins(setting: str) -> frozenset[str]:
    return frozenset(o.strip() for o in setting.split(",") if o.strip())


def cors_headers(request: Request) -> dict[str, str]:
    allowed = _origins(runtime(request).settings.events.cors_allow_origins)
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED}
    origin = header(request.scope, b"origin")
    if origin and origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Expose-Headers": EXPOSED}
    return {}


class _Answer(Response):
    """A Starlette ``Response`` with its raw headers built directly (the same
    headers, in the same order, as ``init_headers`` gives these bodies): the
    general version was a visible share of a small event request."""

    def __init__(self, body: bytes, status: int, content_type: bytes, headers: dict[str, str]) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        raw.append((b"content-type", content_type))
        self.raw_headers = raw


def _text(status: int, message: str, headers: dict[str, str]) -> Response:
    return _Answer((message + "\n").encode(), status, b"text/plain; charset=utf-8", headers)


def _success(
    status: int, ok: int, quarantined: int, details: list[dict[str, object]] | None, headers: dict[str, str]
) -> Response:
    if details is None:
        body = b'{"successful_rows":%d,"quarantined_rows":%d}' % (ok, quarantined)
    else:
        body = msgspec.json.encode({"successful_rows": ok, "quarantined_rows": quarantined, "quarantine": details})
    return _Answer(body, status, b"application/json", headers)


@dataclass
class Job:
    """A request that passed every check before acceptance (SPEC §1.4 1–9)."""

    workspace: Workspace
    datasource: DataSource
    body: bytes
    wait: bool
    details: bool
    wire_size: int = 0
    dedup_key: str = ""


@dataclass
class Accepted:
    """Acceptance done; with wait=true the answer waits for this ticket."""

    ticket: Ticket
    request_id: str
    successful_rows: int
    quarantined_rows: int
    details: list[dict[str, object]] | None


async def ingest(request: Request) -> Response:
    headers = cors_headers(request)
    try:
        return await _ingest(request, headers)
    except EventsError as exc:
        return _text(exc.status, exc.message, {**headers, **exc.headers})
    except Refused as exc:
        runtime(request).metrics.rate_limited.inc(1, "rate" if exc.status == 429 else "concurrency")
        return _text(exc.status, exc.message or UNAVAILABLE, {**headers, **exc.headers})
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("unexpected error in /v0/events (ref %s)", reference)
        return _text(500, f"Internal server error, no data ingested (ref {reference})", headers)


async def _ingest(request: Request, headers: dict[str, str]) -> Response:
    rt = runtime(request)
    settings = rt.settings.events
    principal = authenticate(request)
    workspace = principal.workspace
    assert workspace is not None
    name, fmt = parameters(request)
    decision = rt.limits.workspace(workspace)
    if decision is not None:
        headers.update(decision.headers())
    if principal.rps:
        decision = rt.limits.jwt(principal.token.id, principal.rps, decision)
        if decision is not None:
            headers.update(decision.headers())
    datasource = await resolve(request, principal, name)
    if datasource is not None:
        decision = rt.limits.datasource(workspace, datasource, decision)
        if decision is not None:
            headers.update(decision.headers())
    encoding = check_encoding(request, settings)
    length = header(request.scope, b"content-length")
    large = length is None or not length.isdigit() or int(length) >= settings.large_request_bytes
    async with rt.limits.slot(workspace, datasource.id if datasource else name, large):
        body, wire_size = await read_body(request, encoding, fmt, settings, rt.settings.server.body_read_timeout_s)
        rt.limits.wire_bytes(workspace, wire_size, decision)
        if datasource is None:
            datasource = await _autocreate(rt, workspace, name, body)
        job = Job(
            workspace=workspace,
            datasource=datasource,
            body=body,
            wait=(query_param(request, "wait") or "").lower() == "true",
            details=(query_param(request, "quarantine_details") or "").lower() == "true",
            wire_size=wire_size,
        )
        job.dedup_key = _dedup_key(request, job)
        if job.dedup_key:
            outcome = await _accept_once(request, job, headers)
        else:
            outcome = await _accept(request, job, headers)
    if isinstance(outcome, Response):
        return outcome
    status = 202
    if job.wait:
        delivered = await rt.flusher.wait_delivered(outcome.ticket, outcome.request_id, settings.wait_timeout_ms / 1000)
        if delivered is not None and delivered.committed:
            status = 200
        elif delivered is not None and delivered.failure is not None:
            _raise_view_failure(delivered.failure, rt)
    return _success(status, outcome.successful_rows, outcome.quarantined_rows, outcome.details, headers)


MV_PARTIAL = "Your data was received but it was not propagated due to a conflict with Materialized Views. Error: "
MV_NOTHING_STORED = "Materialized View error, no data ingested. Error: "


def _raise_view_failure(failure: Failure, rt: Runtime) -> None:
    """E21 / E22 (SPEC §8.4): the only errors after acceptance. Other
    failures parked the rows in the dead-letter area: still a 202."""
    if failure.kind == "mv_partial":
        raise EventsError(422, MV_PARTIAL + failure.detail)
    if failure.kind == "mv_nothing_stored":
        raise EventsError(
            503, MV_NOTHING_STORED + failure.detail, {"Retry-After": str(rt.settings.events.retry_after_503_s)}
        )


async def _autocreate(rt: Runtime, workspace: Workspace, name: str, body: bytes) -> DataSource:
    try:
        return await rt.autocreator.get_or_create(workspace, name, body)
    except AutocreateError as exc:
        unavailable = {"Retry-After": str(rt.settings.events.retry_after_503_s)}
        if exc.status == 503:
            raise EventsError(503, UNAVAILABLE, unavailable) from None
        raise EventsError(exc.status, exc.message) from None


def _dedup_key(request: Request, job: Job) -> str:
    dedup = runtime(request).settings.dedup
    presented = header(request.scope, b"idempotency-key")
    if dedup.idempotency_header and presented:
        return idempotency_key(job.workspace.id, job.datasource.id, presented)
    if dedup.body_hash:
        return body_key(job.workspace.id, job.datasource.id, job.body)
    return ""


async def _accept_once(request: Request, job: Job, headers: dict[str, str]) -> Accepted | Response:
    """Dedup (SPEC §8.5): a concurrent identical request waits for the first."""
    index = runtime(request).dedup
    await index.reserve(job.dedup_key)
    try:
        entry = index.lookup(job.dedup_key)
        if entry is not None:
            return await _answer_duplicate(request, job, entry, headers)
        return await _accept(request, job, headers)
    finally:
        index.release(job.dedup_key)


async def _answer_duplicate(request: Request, job: Job, entry: Entry, headers: dict[str, str]) -> Response:
    rt = runtime(request)
    status = 202
    if job.wait:
        if entry.seq == 0 or rt.flusher.flushed_through >= entry.seq:
            status = 200
        else:
            outcome = await rt.flusher.wait_delivered(
                Ticket(entry.seq, 0), entry.request_id, rt.settings.events.wait_timeout_ms / 1000
            )
            status = 200 if outcome is not None and outcome.committed else 202
    return _success(
        status, entry.successful_rows, entry.quarantined_rows, None, {**headers, "X-Birdhouse-Deduplicated": "true"}
    )


async def _accept(request: Request, job: Job, headers: dict[str, str]) -> Accepted | Response:
    rt = runtime(request)
    if len(job.body) <= INLINE_BYTES:
        converted = rt.ingestor.convert(job.datasource, job.body, job.details)
    else:
        converted = await rt.ingestor.convert_large(job.datasource, job.body, job.details)
    shown = converted.details if job.details else None
    if not converted.successful_rows and not converted.quarantined_rows:
        return _success(200 if job.wait else 202, 0, 0, shown, headers)
    request_id = new_request_id()
    if rt.settings.wal.unsafe_ack_before_write:
        _unsafe_accept_later(rt, job, converted, request_id)
        return _success(202, converted.successful_rows, converted.quarantined_rows, shown, headers)
    try:
        ticket, _ = await accept(
            rt,
            job.workspace,
            job.datasource,
            converted,
            wire_size=job.wire_size,
            dedup_key=job.dedup_key,
            request_id=request_id,
        )
    except Unavailable:
        raise EventsError(503, UNAVAILABLE, {"Retry-After": str(rt.settings.events.retry_after_503_s)}) from None
    return Accepted(ticket, request_id, converted.successful_rows, converted.quarantined_rows, shown)


_background: set[asyncio.Task[None]] = set()


def _unsafe_accept_later(rt: Runtime, job: Job, converted: Converted, request_id: str) -> None:
    """The crash harness's negative control (wal.unsafe_ack_before_write): the
    rows reach the WAL only after the answer, so a kill -9 can lose them."""

    async def later() -> None:
        await asyncio.sleep(0.3)
        await run_in_threadpool(rt.ingestor.accept, job.workspace, job.datasource, converted, request_id)
        rt.flusher.note(converted.successful_rows, len(converted.rows))

    task = asyncio.create_task(later())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def preflight(request: Request) -> Response:
    headers = cors_headers(request)
    if headers:
        headers.pop("Access-Control-Expose-Headers", None)
        headers["Access-Control-Allow-Methods"] = "POST"
        requested = header(request.scope, b"access-control-request-headers")
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
