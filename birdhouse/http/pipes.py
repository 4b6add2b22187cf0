"""Pipes API (SPEC §0.4): endpoints ``GET /v0/pipes/<name>.json|.csv|.ndjson`` and pipe management.

| request | response |
|---|---|
| ``GET /v0/pipes`` | 200 ``{"pipes":[Pipe…]}``, the pipes the token may see (never 403) |
| ``GET /v0/pipes/<name>`` | 200 Pipe |
| ``GET /v0/pipes/<name>.pipe`` | 200 ``text/plain``, the datafile as deployed |
| ``GET /v0/pipes/<name>.json?param=…`` | the endpoint's result, §10.2 JSON shape (also ``.csv``, ``.ndjson``) |
| ``POST /v0/pipes?name=<name>[&force=true]`` | create (``force``: replace); datafile as body or field ``datafile`` |
| ``DELETE /v0/pipes/<name>`` | 204; drops its materialized views (their targets keep their rows) |

Scopes: create needs ADMIN or ``PIPES:CREATE``; drop ADMIN or ``PIPES:DROP:<pipe>``;
an endpoint ADMIN, ``PIPES:READ:<pipe>``, or read scopes on every data source it reads.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from birdhouse.catalog import endpoints
from birdhouse.catalog import pipes as ops
from birdhouse.catalog.access import Principal
from birdhouse.catalog.catalog import CatalogError
from birdhouse.catalog.models import Pipe
from birdhouse.catalog.opslog import record_endpoint_error
from birdhouse.http.auth import runtime, workspace_principal
from birdhouse.http.errors import ApiError, json_error
from birdhouse.http.params import read_params
from birdhouse.query.execute import PASSTHROUGH_SETTINGS
from birdhouse.schema.pipefile import PipeFileError, parse_pipe_file

__all__ = ["routes"]

# Endpoint suffix → engine output format.
ENDPOINT_FORMATS = {".json": "JSON", ".csv": "CSVWithNames", ".ndjson": "JSONEachRow", ".parquet": "Parquet"}
# Query-string keys that are never pipe parameters (SPEC §1.2: sent by clients, ignored).
_NOT_PARAMS = frozenset({"token", "from", "cli_version", "__tb__semver", "__tb__deployment"})


def _scoped(principal: Principal, pipe: Pipe, *types: str) -> bool:
    return any(s.type in types and s.resource == pipe.id for s in principal.token.scopes)


def _can_create(principal: Principal) -> bool:
    return principal.is_admin or any(s.type == "PIPES:CREATE" for s in principal.token.scopes)


def _sees(principal: Principal, pipe: Pipe) -> bool:
    return _can_create(principal) or _scoped(principal, pipe, "PIPES:READ", "PIPES:DROP")


def pipe_json(request: Request, pipe: Pipe) -> dict[str, Any]:
    rt = runtime(request)
    endpoint = ops.endpoint_node(pipe)
    nodes = []
    for node in pipe.nodes:
        target = rt.catalog.datasources.get(node.datasource_id) if node.datasource_id else None
        nodes.append(
            {
                "name": node.name,
                "sql": node.sql,
                "description": node.description,
                "node_type": node.type or "standard",
                "materialized": target.name if target else None,
                "materialized_view": ops.mv_table(pipe.name, node.name) if node.type == "materialized" else None,
            }
        )
    try:
        params = ops.pipe_params(pipe)
    except CatalogError:
        params = []
    kind = (
        "endpoint" if endpoint else "materialized" if any(n.type == "materialized" for n in pipe.nodes) else "default"
    )
    return {
        "id": pipe.id,
        "name": pipe.name,
        "description": pipe.description,
        "type": kind,
        "endpoint": endpoint.name if endpoint else None,
        "url": f"{str(request.base_url).rstrip('/')}/v0/pipes/{pipe.name}.json" if endpoint else None,
        "created_at": pipe.created_at,
        "updated_at": pipe.updated_at,
        "nodes": nodes,
        "params": [
            {"name": p.name, "type": p.type, "default": p.default, "required": p.default is None} for p in params
        ],
    }


def _find(request: Request, principal: Principal, name: str) -> Pipe:
    assert principal.workspace is not None
    pipe = runtime(request).catalog.find_pipe(principal.workspace.id, name)
    if pipe is None:
        raise ApiError(404, f"Pipe '{name}' not found")
    return pipe


async def list_pipes(request: Request) -> Response:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    found = runtime(request).catalog.workspace_pipes(principal.workspace.id)
    return JSONResponse({"pipes": [pipe_json(request, p) for p in found if _sees(principal, p)]})


async def _endpoint(request: Request, principal: Principal, name: str, fmt: str) -> Response:
    rt = runtime(request)
    pipe = _find(request, principal, name)
    values: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in _NOT_PARAMS and key not in PASSTHROUGH_SETTINGS:
            values.setdefault(key, value)  # first occurrence wins (SPEC §1.2)
    passthrough = {k: request.query_params[k] for k in PASSTHROUGH_SETTINGS if k in request.query_params}
    try:
        output = await run_in_threadpool(
            endpoints.run_endpoint, rt.backend, rt.catalog, principal, pipe, values, fmt, rt.settings.sql, passthrough
        )
    except endpoints.PipeQueryFailed as exc:
        assert principal.workspace is not None
        # tinybird.endpoint_errors: why a dashboard shows nothing, queryable by ADMIN tokens.
        await run_in_threadpool(
            record_endpoint_error, rt.backend, principal.workspace, pipe.id, pipe.name, values, exc.status, exc.message
        )
        headers = {"X-DB-Exception-Code": str(exc.code)} if exc.code is not None else None
        return json_error(exc.status, exc.message, headers)
    return Response(output.body, media_type=None, headers={"content-type": output.content_type})


async def get_pipe(request: Request) -> Response:
    principal = workspace_principal(request)
    key: str = request.path_params["name"]
    for suffix, fmt in ENDPOINT_FORMATS.items():
        if key.endswith(suffix):
            return await _endpoint(request, principal, key.removesuffix(suffix), fmt)
    source = key.endswith(".pipe")
    pipe = _find(request, principal, key.removesuffix(".pipe"))
    if not _sees(principal, pipe):
        raise ApiError(404, f"Pipe '{pipe.name}' not found")
    if source:
        return PlainTextResponse(pipe.source)
    return JSONResponse(pipe_json(request, pipe))


async def create_pipe(request: Request) -> Response:
    principal = workspace_principal(request)
    workspace = principal.workspace
    assert workspace is not None
    if not _can_create(principal):
        raise ApiError(403, "Creating a Pipe needs a token with PIPES:CREATE or ADMIN scope")
    rt = runtime(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    structured = content_type in ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")
    params = await read_params(request)
    if structured:
        text = params.get("datafile") or ""
    else:
        raw = await request.body()
        if len(raw) > rt.settings.sql.max_query_bytes * 4:
            raise ApiError(413, "The pipe datafile is too large")
        text = raw.decode("utf-8", "replace")
    name = (params.get("name") or "").strip()
    if not name:
        raise ApiError(400, "Missing 'name' parameter")
    if not text.strip():
        raise ApiError(400, "Missing the pipe datafile: send it as the body or as the 'datafile' field")
    try:
        parsed = parse_pipe_file(text)
    except PipeFileError as exc:
        raise ApiError(400, str(exc)) from None
    force = params.flag("force")
    pipe = await run_in_threadpool(lambda: ops.create_pipe(rt.catalog, workspace, name, parsed, text, replace=force))
    return JSONResponse(pipe_json(request, pipe))


async def drop_pipe(request: Request) -> Response:
    principal = workspace_principal(request)
    workspace = principal.workspace
    assert workspace is not None
    pipe = _find(request, principal, request.path_params["name"])
    if not (principal.is_admin or _scoped(principal, pipe, "PIPES:DROP")):
        if not _sees(principal, pipe):
            raise ApiError(404, f"Pipe '{pipe.name}' not found")
        raise ApiError(403, "Dropping a Pipe needs a token with PIPES:DROP or ADMIN scope")
    catalog = runtime(request).catalog
    await run_in_threadpool(ops.drop_pipe, catalog, workspace, pipe)
    return Response(status_code=204)


routes = [
    Route("/v0/pipes", list_pipes, methods=["GET"]),
    Route("/v0/pipes/", list_pipes, methods=["GET"]),
    Route("/v0/pipes", create_pipe, methods=["POST"]),
    Route("/v0/pipes/", create_pipe, methods=["POST"]),
    Route("/v0/pipes/{name}", get_pipe, methods=["GET"]),
    Route("/v0/pipes/{name}", drop_pipe, methods=["DELETE"]),
]
