"""Data Sources API (SPEC §10.1): create, list, describe, truncate, drop."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from birdhouse.catalog import datasources as ops
from birdhouse.catalog.access import Principal
from birdhouse.catalog.autocreate import INVALID_DATA
from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.http.auth import runtime, workspace_principal
from birdhouse.http.errors import ApiError
from birdhouse.http.imports import block, import_body
from birdhouse.http.params import Params, read_params, read_params_and_data
from birdhouse.runtime import Runtime
from birdhouse.schema.columns import Column, SchemaError, is_json_typed, parse_schema
from birdhouse.schema.datafile import render_datasource_file
from birdhouse.schema.engine import EngineSpec, default_engine, engine_full
from birdhouse.schema.infer import infer_schema, sample_body

# POST /v0/datasources parameter → EngineSpec field.
ENGINE_PARAMS = {
    "engine_sorting_key": "sorting_key",
    "engine_partition_key": "partition_key",
    "engine_primary_key": "primary_key",
    "engine_ttl": "ttl",
    "engine_ver": "ver",
    "engine_sign": "sign",
    "engine_version": "version",
    "engine_settings": "settings",
}


def column_json(column: Column) -> dict[str, Any]:
    return {
        "name": column.name,
        "normalized_name": column.name,
        "type": column.type,
        "nullable": column.nullable,
        "default_value": f"{column.default_kind} {column.default_expr}" if column.default_kind else None,
        "jsonpath": column.jsonpath or "",
        "codec": column.codec,
        "auto": False,
    }


def datasource_json(datasource: DataSource, stats: ops.TableStats | None = None) -> dict[str, Any]:
    columns = [column_json(c) for c in datasource.columns]
    engine = datasource.engine
    stats = stats or ops.TableStats(0, 0)
    return {
        "id": datasource.id,
        "name": datasource.name,
        "type": datasource.type,
        "created_at": datasource.created_at,
        "updated_at": datasource.updated_at,
        "description": datasource.description,
        "engine": {
            "engine": engine.engine,
            "engine_full": engine_full(engine, datasource.columns),
            "sorting_key": engine.sorting_key or "",
            "partition_key": engine.partition_key or "",
            "ttl": engine.ttl or "",
        },
        "engine_sorting_key": engine.sorting_key or "",
        "engine_partition_key": engine.partition_key or "",
        "schema": {"columns": columns, "sql_schema": ", ".join(c.schema_sql() for c in datasource.columns)},
        "columns": columns,
        "statistics": {"bytes": stats.bytes, "row_count": stats.row_count},
        "tags": datasource.tags,
        "used_by": [],
        "headers": {},
        "indexes": [{"expr": index} for index in datasource.indexes],
        "shared_with": [],
        "version": 0,
        "replicated": False,
        "cluster": None,
        "project": None,
        "new_columns_detected": {},
        "errors_discarded_at": None,
    }


def _find(request: Request, principal: Principal, key: str) -> DataSource:
    assert principal.workspace is not None
    datasource = runtime(request).catalog.find_datasource(principal.workspace.id, key)
    if datasource is None or not principal.sees(datasource.id):
        raise ApiError(404, f"Data Source '{key}' not found")
    return datasource


async def _described(request: Request, workspace: Workspace, datasource: DataSource) -> dict[str, Any]:
    stats = await run_in_threadpool(ops.table_stats, runtime(request).catalog, workspace, datasource.name)
    return datasource_json(datasource, stats)


async def list_datasources(request: Request) -> Response:
    # Any valid token may list (never 403: tinybird-python-sdk exits on it).
    principal = workspace_principal(request)
    assert principal.workspace is not None
    catalog = runtime(request).catalog
    found = [d for d in catalog.workspace_datasources(principal.workspace.id) if principal.sees(d.id)]
    names = [d.name for d in found]
    stats = await run_in_threadpool(ops.workspace_table_stats, catalog, principal.workspace, names)
    return JSONResponse({"datasources": [datasource_json(d, stats[d.name]) for d in found]})


async def get_datasource(request: Request) -> Response:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    key: str = request.path_params["name"]
    if key.endswith(".datasource"):
        datasource = _find(request, principal, key.removesuffix(".datasource"))
        text = render_datasource_file(
            datasource.description, datasource.columns, datasource.engine, [], datasource.tags, datasource.indexes
        )
        return PlainTextResponse(text)
    datasource = _find(request, principal, key)
    return JSONResponse(await _described(request, principal.workspace, datasource))


def engine_from_params(params: Params, columns: list[Column]) -> EngineSpec:
    base = default_engine(columns)
    engine = params.get("engine")
    values: dict[str, Any] = {}
    if engine:
        values["engine"] = engine.strip()
    for param, field in ENGINE_PARAMS.items():
        value = params.get(param)
        if value is not None and value.strip():
            values[field] = value.strip()
    if not values:
        return base
    if "sorting_key" not in values and "engine" not in values:
        values.setdefault("sorting_key", base.sorting_key)
    return EngineSpec(**values)


async def create_datasource(request: Request) -> Response:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    if not principal.can_create():
        raise ApiError(403, "Creating a Data Source needs a token with DATASOURCES:CREATE or ADMIN scope")
    rt = runtime(request)
    params, data, kind = await read_params_and_data(request, rt.settings.events.max_request_bytes)
    mode = (params.get("mode") or "create").strip().lower()
    name = (params.get("name") or "").strip()
    if not name:
        raise ApiError(400, "Missing 'name' parameter")
    fmt = (params.get("format") or kind or "csv").strip().lower()
    if mode not in ("create", "append"):
        raise ApiError(400, f"mode={mode} is not supported: use create or append (replace: truncate, then append)")
    if data is not None and fmt not in ("csv", "ndjson"):
        raise ApiError(400, f"format={fmt} is not supported for data: use csv or ndjson")
    if params.get("url"):
        raise ApiError(400, "Importing from a URL is disabled on this server (imports.url_enabled)")
    existing = rt.catalog.find_datasource(principal.workspace.id, name)
    if mode == "append" or (existing is not None and data is not None and not params.get("schema")):
        if existing is None:
            raise ApiError(404, f"Data Source '{name}' not found")
        if data is None:
            raise ApiError(400, "mode=append needs data: a csv or ndjson field, or a raw body")
        return await _append_data(request, principal.workspace, existing, data, fmt)
    schema = params.get("schema")
    if (not schema or not schema.strip()) and data is not None and fmt == "ndjson":
        schema = await run_in_threadpool(_infer_schema, rt, data)
    if not schema or not schema.strip():
        raise ApiError(400, "Creating a Data Source needs a 'schema' (inference works for ndjson data only)")
    try:
        # Any engine type for a data source without json paths (a materialized
        # view's target); a JSON-typed one is fed by /v0/events: SPEC §4.2 types only.
        columns = parse_schema(schema, check_types=False)
        if is_json_typed(columns):
            columns = parse_schema(schema)
        engine = engine_from_params(params, columns)
    except (SchemaError, ValueError) as exc:
        raise ApiError(400, str(exc)) from None
    rt = runtime(request)
    datasource = await run_in_threadpool(
        lambda: ops.create_datasource(
            rt.catalog,
            principal.workspace,  # type: ignore[arg-type]
            name,
            columns,
            engine,
            description=params.get("description") or "",
            tags=[t.strip() for t in (params.get("tags") or "").split(",") if t.strip()],
            max_per_workspace=rt.settings.limits.max_datasources_per_workspace,
        )
    )
    if data is not None:
        return await _append_data(request, principal.workspace, datasource, data, fmt)
    return JSONResponse({"datasource": datasource_json(datasource)})


def _infer_schema(rt: Runtime, data: bytes) -> str:
    settings = rt.settings.inference
    inferred = sample_body(
        data,
        settings.sample_initial_bytes,
        settings.sample_max_bytes,
        lambda sample: infer_schema(sample, max_columns=settings.max_columns),
    )
    if inferred is None:
        raise ApiError(400, INVALID_DATA)
    return inferred.schema


async def _append_data(
    request: Request, workspace: Workspace, datasource: DataSource, data: bytes, fmt: str
) -> Response:
    """The synchronous append of SPEC §10.1: answered once the rows are in the table."""
    principal = workspace_principal(request)
    if not principal.can_append(datasource.id):
        raise ApiError(403, "Appending needs a token with DATASOURCES:APPEND on this Data Source")
    rt = runtime(request)
    job = await import_body(rt, workspace, datasource, data, fmt, len(data))
    await rt.flusher.wait_delivered(job.ticket, job.id, rt.settings.events.wait_timeout_ms / 1000)
    described = await _described(request, workspace, datasource)
    return JSONResponse(
        {
            "import_id": job.id,
            "datasource": described,
            "successful_rows": job.rows,
            "quarantined_rows": job.quarantined,
            "quarantine_rows": job.quarantined,
            "invalid_lines": job.invalid,
            "error": False,
            "blocks": [block(job)],
            "block_log": [{"block_id": job.id, "status": "done"}],
        }
    )


async def update_datasource(request: Request) -> Response:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    if not principal.can_create():
        raise ApiError(403, "Changing a Data Source needs a token with DATASOURCES:CREATE or ADMIN scope")
    datasource = _find(request, principal, request.path_params["name"])
    params = await read_params(request)
    changes: dict[str, object] = {}
    if params.get("description") is not None:
        changes["description"] = params.get("description")
    if params.get("tags") is not None:
        changes["tags"] = [t.strip() for t in (params.get("tags") or "").split(",") if t.strip()]
    if params.get("name") not in (None, datasource.name):
        raise ApiError(400, "Renaming a Data Source is not supported")
    updated = await run_in_threadpool(ops.update_datasource, runtime(request).catalog, datasource, **changes)
    return JSONResponse(await _described(request, principal.workspace, updated))


async def truncate_datasource(request: Request) -> Response:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    if not principal.can_create():
        raise ApiError(403, "Truncating a Data Source needs a token with DATASOURCES:CREATE or ADMIN scope")
    key: str = request.path_params["name"]
    base = key.removesuffix("_quarantine")
    datasource = _find(request, principal, base)
    table = datasource.quarantine_name if key != base else datasource.name
    await run_in_threadpool(ops.truncate_table, runtime(request).catalog, principal.workspace, table)
    return JSONResponse({})


async def drop_datasource(request: Request) -> Response:
    principal = workspace_principal(request)
    assert principal.workspace is not None
    datasource = _find(request, principal, request.path_params["name"])
    if not principal.can_drop(datasource.id):
        raise ApiError(403, "Dropping a Data Source needs a token with DATASOURCES:DROP or ADMIN scope")
    force = request.query_params.get("force", "").strip().lower() == "true"
    workspace, catalog = principal.workspace, runtime(request).catalog
    await run_in_threadpool(lambda: ops.drop_datasource(catalog, workspace, datasource, force=force))
    return Response(status_code=204)


routes = [
    Route("/v0/datasources", list_datasources, methods=["GET"]),
    Route("/v0/datasources/", list_datasources, methods=["GET"]),
    Route("/v0/datasources", create_datasource, methods=["POST"]),
    Route("/v0/datasources/", create_datasource, methods=["POST"]),
    Route("/v0/datasources/{name}", get_datasource, methods=["GET"]),
    Route("/v0/datasources/{name}", update_datasource, methods=["PUT"]),
    Route("/v0/datasources/{name}", drop_datasource, methods=["DELETE"]),
    Route("/v0/datasources/{name}/truncate", truncate_datasource, methods=["POST"]),
]
