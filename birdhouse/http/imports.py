"""Bulk appends outside /v0/events (SPEC §10.1, §10.3): ``POST /v1/datasources/
<ds>/append`` answered with a job, the Jobs API that reports on it, and the
synchronous append of ``POST /v0/datasources`` with data.

Both go through the same acceptance point as /v0/events (the WAL), so the
durability promise is the same: the job is answered once its rows are on disk.
Jobs are kept in memory for 48 h (the last 100 listed); a restart forgets the
job records, never the rows.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from birdhouse.catalog.models import DataSource, Workspace, utc_now
from birdhouse.http.auth import runtime, workspace_principal
from birdhouse.http.compression import BodyError, decode, encoding_of, read_wire
from birdhouse.http.errors import ApiError
from birdhouse.pipeline.accept import Unavailable, accept
from birdhouse.runtime import Runtime
from birdhouse.schema.columns import is_json_typed
from birdhouse.schema.convert import Converted, Converter
from birdhouse.schema.csvrows import csv_columns, csv_to_ndjson
from birdhouse.wal import Ticket

FORMATS = ("ndjson", "csv")
JOB_TTL_S = 48 * 3600


@dataclass
class ImportJob:
    id: str
    workspace_id: str
    datasource: DataSource
    ticket: Ticket
    rows: int
    quarantined: int
    invalid: int
    bytes: int
    seconds: float
    created: str = field(default_factory=utc_now)
    created_at_s: float = field(default_factory=time.time)


def _jobs(rt: Runtime) -> dict[str, ImportJob]:
    found: dict[str, ImportJob] = rt.extras.setdefault("jobs", {})
    return found


def convert_import(rt: Runtime, datasource: DataSource, body: bytes, fmt: str, import_id: str) -> Converted:
    """Rows of an NDJSON or CSV body; quarantine rows carry the import id (SPEC §6)."""
    if fmt == "csv":
        ndjson, _ = csv_to_ndjson(body, datasource.columns)
        converted = Converter(csv_columns(datasource.columns), lenient=True).convert(ndjson)
    else:
        if not is_json_typed(datasource.columns):
            raise ApiError(400, f"Data Source '{datasource.name}' has no json paths: send CSV (format=csv)")
        converted = rt.ingestor.convert(datasource, body, False)
    if converted.quarantined_rows:
        converted.quarantine = converted.quarantine.replace(
            b'"c__import_id":null', b'"c__import_id":"' + import_id.encode() + b'"'
        )
    return converted


async def import_body(
    rt: Runtime, workspace: Workspace, datasource: DataSource, body: bytes, fmt: str, wire_size: int
) -> ImportJob:
    import_id = str(uuid.uuid4())
    started = time.monotonic()
    converted = await run_in_threadpool(convert_import, rt, datasource, body, fmt, import_id)
    try:
        ticket, _ = await accept(rt, workspace, datasource, converted, wire_size=wire_size)
    except Unavailable:
        raise ApiError(503, "Service temporarily unavailable, no data ingested, please retry again") from None
    job = ImportJob(
        id=import_id,
        workspace_id=workspace.id,
        datasource=datasource,
        ticket=ticket,
        rows=converted.successful_rows,
        quarantined=converted.quarantined_rows,
        invalid=sum(1 for d in converted.details if d.get("columns") == [""]),
        bytes=len(body),
        seconds=time.monotonic() - started,
    )
    jobs = _jobs(rt)
    jobs[job.id] = job
    for stale in [k for k, j in jobs.items() if j.created_at_s < time.time() - JOB_TTL_S]:
        del jobs[stale]
    return job


def block(job: ImportJob) -> dict[str, Any]:
    return {
        "block_id": job.id,
        "process_return": [
            {
                "lines": job.rows,
                "quarantine": job.quarantined,
                "invalid_lines": job.invalid,
                "empty_lines": 0,
                "bytes": job.bytes,
                "parser": "python",
            }
        ],
        "processing_time": round(job.seconds, 6),
    }


def job_json(rt: Runtime, job: ImportJob) -> dict[str, Any]:
    done = rt.flusher.flushed_through >= job.ticket.seq
    url = f"{rt.settings.base_url}/v0/jobs/{job.id}"
    return {
        "id": job.id,
        "job_id": job.id,
        "kind": "import",
        "status": "done" if done else "working",
        "created_at": job.created,
        "updated_at": job.created,
        "started_at": job.created,
        "job_url": url,
        "datasource": {"id": job.datasource.id, "name": job.datasource.name},
        "import_id": job.id,
        "statistics": {"bytes": job.bytes, "row_count": job.rows},
        "quarantine_rows": job.quarantined,
        "invalid_lines": job.invalid,
        "blocks": [block(job)],
        "block_log": [{"block_id": job.id, "status": "done" if done else "working"}],
    }


async def read_import_body(request: Request) -> tuple[bytes, int]:
    rt = runtime(request)
    try:
        encoding = encoding_of(request.headers.get("content-encoding"))
        wire = await read_wire(
            request.receive, rt.settings.events.max_request_bytes, rt.settings.server.body_read_timeout_s
        )
        body = await run_in_threadpool(decode, wire, encoding, rt.settings.events.max_decompressed_bytes)
    except BodyError as exc:
        raise ApiError(exc.status, exc.message) from None
    return body, len(wire)


def appendable(request: Request, name: str) -> tuple[Workspace, DataSource]:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    datasource = runtime(request).catalog.find_datasource(principal.workspace.id, name)
    if datasource is None or not principal.sees(datasource.id):
        raise ApiError(404, f"Data Source '{name}' not found")
    if not principal.can_append(datasource.id):
        raise ApiError(403, "Appending needs a token with DATASOURCES:APPEND on this Data Source")
    return principal.workspace, datasource


async def v1_append(request: Request) -> Response:
    workspace, datasource = appendable(request, request.path_params["name"])
    fmt = (request.query_params.get("format") or "ndjson").lower()
    if fmt not in FORMATS:
        raise ApiError(400, f"Unsupported format '{fmt}': use ndjson or csv")
    body, wire_size = await read_import_body(request)
    rt = runtime(request)
    job = await import_body(rt, workspace, datasource, body, fmt, wire_size)
    shown = job_json(rt, job)
    shown["status"] = "waiting" if shown["status"] != "done" else "done"
    return JSONResponse(shown)


async def v1_replace(request: Request) -> Response:
    raise ApiError(400, "Replacing data is not supported by birdhouse yet; truncate, then append")


def _find_job(request: Request) -> ImportJob:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    job = _jobs(runtime(request)).get(request.path_params["job_id"])
    if job is None or job.workspace_id != principal.workspace.id or not principal.sees(job.datasource.id):
        raise ApiError(404, f"Job '{request.path_params['job_id']}' not found")
    return job


async def list_jobs(request: Request) -> Response:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    rt = runtime(request)
    jobs = [
        job_json(rt, j)
        for j in sorted(_jobs(rt).values(), key=lambda j: j.created_at_s, reverse=True)
        if j.workspace_id == principal.workspace.id and principal.sees(j.datasource.id)
    ]
    status, kind = request.query_params.get("status"), request.query_params.get("kind")
    jobs = [j for j in jobs if (not status or j["status"] == status) and (not kind or j["kind"] == kind)]
    return JSONResponse({"jobs": jobs[:100]})


async def get_job(request: Request) -> Response:
    return JSONResponse(job_json(runtime(request), _find_job(request)))


async def cancel_job(request: Request) -> Response:
    _find_job(request)
    raise ApiError(400, "The job cannot be cancelled: its rows were already accepted")


routes = [
    Route("/v1/datasources/{name}/append", v1_append, methods=["POST"]),
    Route("/v1/datasources/{name}/replace", v1_replace, methods=["POST"]),
    Route("/v0/jobs", list_jobs, methods=["GET"]),
    Route("/v0/jobs/", list_jobs, methods=["GET"]),
    Route("/v0/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/v0/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
]
