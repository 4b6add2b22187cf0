"""The checks of ``POST /v0/events`` before any row is staged (SPEC §1.4 2–9):
token, parameters, data source resolution, body reading and decoding.

Every failure here is an :class:`EventsError` with the exact SPEC §2.2 text;
nothing has been stored when one is raised.
"""

from __future__ import annotations

import re

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from birdhouse.catalog.access import AuthError, Principal
from birdhouse.catalog.models import DataSource
from birdhouse.config import EventsSettings
from birdhouse.http.auth import header, presented_token, query_param, runtime
from birdhouse.http.compression import GZIP_MAGIC, ZSTD_MAGIC, BodyError, decode, encoding_of, read_wire
from birdhouse.schema.columns import is_json_typed

UNAVAILABLE = "Service temporarily unavailable, no data ingested, please retry again"
FORMATS = ("ndjson", "json")


class EventsError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def authenticate(request: Request) -> Principal:
    """Step 2: E1 (403) or E4 (404)."""
    token = presented_token(request)
    if token is None:
        raise EventsError(403, "Invalid token")
    try:
        principal = runtime(request).catalog.authenticate(token)
    except AuthError as exc:
        raise EventsError(exc.status, "Workspace not found" if exc.status == 404 else "Invalid token") from None
    if principal.workspace is None:
        raise EventsError(403, "Invalid token")
    if principal.is_jwt and not runtime(request).settings.events.accept_jwt:
        raise EventsError(403, "Invalid token")
    return principal


def parameters(request: Request) -> tuple[str, str]:
    """Step 3: the data source name (E6) and the format (E18)."""
    name = (query_param(request, "name") or "").strip()
    if not name:
        raise EventsError(400, "Missing 'name' parameter")
    fmt = (query_param(request, "format") or "ndjson").strip().lower()
    if fmt not in FORMATS:
        shown = (query_param(request, "format") or "")[:100].encode("unicode_escape").decode("ascii")
        raise EventsError(501, f"Unimplemented format {shown}")
    return name, fmt


async def resolve(request: Request, principal: Principal, name: str) -> DataSource | None:
    """Step 5. None means: missing, and this token may create it (classic mode)."""
    assert principal.workspace is not None
    rt = runtime(request)
    datasource = rt.catalog.find_datasource(principal.workspace.id, name)
    if datasource is None and rt.catalog.shared:
        workspace_id = principal.workspace.id
        if await run_in_threadpool(rt.catalog.refresh_for_missing_datasource, workspace_id, name):
            datasource = rt.catalog.find_datasource(workspace_id, name)
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
        return None
    if not principal.can_append(datasource.id):
        raise EventsError(403, "Invalid token")
    if not is_json_typed(datasource.columns):
        raise EventsError(400, "Data Source must be of type JSON")
    return datasource


def check_encoding(request: Request, settings: EventsSettings) -> str:
    """Step 7: E16 for an unknown encoding, E14 on Content-Length alone."""
    try:
        encoding = encoding_of(header(request.scope, b"content-encoding"))
    except BodyError as exc:
        raise EventsError(exc.status, exc.message) from None
    length = header(request.scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > settings.max_request_bytes:
        raise EventsError(413, f"Request Entity Too Large: body exceeds {settings.max_request_bytes} bytes")
    return encoding


async def read_body(
    request: Request, encoding: str, fmt: str, settings: EventsSettings, timeout_s: float
) -> tuple[bytes, int]:
    """Step 9's input: the decoded body (E14/E15/E17, 408 when too slow) and its wire size."""
    try:
        wire = await read_wire(request.receive, settings.max_request_bytes, timeout_s)
        if is_plain(wire, encoding):
            body = decode(wire, encoding, settings.max_decompressed_bytes)
        else:
            body = await run_in_threadpool(decode, wire, encoding, settings.max_decompressed_bytes)
    except BodyError as exc:
        raise EventsError(exc.status, exc.message) from None
    if fmt == "json":
        body = json_document_to_ndjson(body)
    return body, len(wire)


# Below this, work is cheaper than a hop to a worker thread and back.
INLINE_BYTES = 64 * 1024


def is_plain(wire: bytes, encoding: str) -> bool:
    """Uncompressed: decoding it is a size check, cheaper on the loop than a
    hop to a thread at any size. A compressed body may inflate a thousandfold:
    never on the event loop."""
    return encoding == "identity" and not wire.startswith((GZIP_MAGIC, ZSTD_MAGIC))


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
