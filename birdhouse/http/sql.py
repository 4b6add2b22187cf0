"""Query API (SPEC §10.2): ``GET /v0/sql?q=`` and ``POST /v0/sql``."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from birdhouse.http.auth import query_param, runtime, workspace_principal
from birdhouse.http.errors import ApiError, json_error
from birdhouse.query.execute import PASSTHROUGH_SETTINGS, QueryFailed, run_sql


async def _sql_text(request: Request, max_bytes: int) -> str:
    """``q`` from the query string; else a form body's ``q``; else the raw body
    whatever its Content-Type (the tb CLI posts raw SQL with none)."""
    first = query_param(request, "q")
    if first is not None:
        return first
    if request.method != "POST":
        raise ApiError(400, "Missing 'q' parameter")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise ApiError(413, f"The query is longer than {max_bytes} bytes")
    text = raw.decode("utf-8", "replace")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        form = parse_qs(text, keep_blank_values=True)
        if "q" in form:
            return form["q"][0]
    return text


async def sql(request: Request) -> Response:
    principal = workspace_principal(request)
    rt = runtime(request)
    text = await _sql_text(request, rt.settings.sql.max_query_bytes)
    if not text.strip():
        raise ApiError(400, "Missing 'q' parameter")
    passthrough = {k: request.query_params[k] for k in PASSTHROUGH_SETTINGS if k in request.query_params}
    try:
        output = await run_in_threadpool(run_sql, rt.backend, rt.catalog, principal, text, rt.settings.sql, passthrough)
    except QueryFailed as exc:
        headers = {"X-DB-Exception-Code": str(exc.code)} if exc.code is not None else None
        return json_error(exc.status, exc.message, headers)
    return Response(output.body, media_type=None, headers={"content-type": output.content_type})


routes = [Route("/v0/sql", sql, methods=["GET", "POST"])]
