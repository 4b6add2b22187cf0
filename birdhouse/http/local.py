"""Tinybird Local compatibility endpoints (SPEC §10.4) and health.

The tb CLI and @tinybirdco/sdk detect a local server with ``GET /tokens`` and
``GET /v0/health``; workspaces are managed with the user token.
"""

from __future__ import annotations

import logging
import math
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from birdhouse.backends import BackendError
from birdhouse.catalog.access import Principal
from birdhouse.catalog.datasources import cluster_of
from birdhouse.catalog.models import Workspace
from birdhouse.http.auth import authenticate, runtime
from birdhouse.http.errors import ApiError
from birdhouse.http.params import read_params

log = logging.getLogger("birdhouse.http")

# A stable organization id: clients only echo it back.
ORGANIZATION_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "birdhouse-local-organization"))


async def ping(request: Request) -> Response:
    return PlainTextResponse("ok")


async def health(request: Request) -> Response:
    rt = runtime(request)
    try:
        await run_in_threadpool(rt.backend.query, "SELECT 1", "TSVRaw")
    except BackendError as exc:
        return JSONResponse({"status": "error", "error": exc.message}, status_code=503)
    if not rt.flusher.ready:
        return JSONResponse({"status": "replaying", "error": "delivering the write-ahead log"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def local_tokens(request: Request) -> Response:
    rt = runtime(request)
    if not rt.local or not rt.settings.local.tokens_endpoint:
        raise ApiError(404, "Not found")
    workspace = rt.default_workspace()
    user = rt.catalog.user_token()
    admin = rt.workspace_admin_token(workspace) if workspace else None
    user_admin = rt.user_admin_token(workspace) if workspace else None
    if user is None or admin is None or user_admin is None:
        raise ApiError(503, "The default workspace is not ready")
    return JSONResponse(
        {"user_token": user.token, "admin_token": user_admin.token, "workspace_admin_token": admin.token}
    )


async def regions(request: Request) -> Response:
    base = runtime(request).settings.base_url
    return JSONResponse({"regions": [{"name": "local", "host": base, "api_host": base}]})


def _user(request: Request) -> Principal:
    """The user token, or a workspace admin token (SPEC §10.4: either lists)."""
    principal = authenticate(request)
    if not (principal.is_user or principal.is_admin):
        raise ApiError(403, "This operation needs the user token or an admin token")
    return principal


def _workspace_json(request: Request, workspace: Workspace) -> dict[str, str]:
    admin = runtime(request).workspace_admin_token(workspace)
    return {"id": workspace.id, "name": workspace.name, "token": admin.token if admin else ""}


async def list_workspaces(request: Request) -> Response:
    principal = _user(request)
    rt = runtime(request)
    # The user token and a user's own admin token (`admin <email>`, what
    # GET /tokens calls admin_token) list every workspace of that user; the
    # tb CLI and the TS SDK look their new workspaces up with the latter.
    if principal.is_user or principal.token.user_id:
        workspaces = sorted(rt.catalog.workspaces.values(), key=lambda w: w.created_at)
    else:
        workspaces = [principal.workspace] if principal.workspace else []
    return JSONResponse(
        {"organization_id": ORGANIZATION_ID, "workspaces": [_workspace_json(request, w) for w in workspaces]}
    )


async def create_workspace(request: Request) -> Response:
    principal = _user(request)
    if not principal.is_user:
        raise ApiError(403, "Creating a workspace needs the user token")
    form = await request.form() if request.method == "POST" else {}
    name = str(request.query_params.get("name") or form.get("name") or "").strip()
    if not name:
        raise ApiError(400, "Missing 'name' parameter")
    rt = runtime(request)
    workspace = await run_in_threadpool(
        rt.catalog.create_workspace, name, principal.token.user_id, rt.settings.local.user_email
    )
    return JSONResponse(_workspace_json(request, workspace))


async def delete_workspace(request: Request) -> Response:
    principal = _user(request)
    if not principal.is_user:
        raise ApiError(403, "Deleting a workspace needs the user token")
    rt = runtime(request)
    workspace = rt.catalog.workspaces.get(request.path_params["workspace_id"])
    if workspace is None:
        workspace = rt.catalog.workspace_by_name(request.path_params["workspace_id"])
    if workspace is None:
        raise ApiError(404, f"Workspace '{request.path_params['workspace_id']}' not found")
    await run_in_threadpool(rt.catalog.delete_workspace, workspace)
    cluster = cluster_of(rt.backend)
    if cluster is not None:
        # Cluster mode keeps the shards' tables in a database of their own.
        await run_in_threadpool(cluster.drop_database, workspace.database)
    return JSONResponse({"id": workspace.id, "name": workspace.name})


async def current_workspace(request: Request) -> Response:
    """``GET /v1/workspace``: the token's workspace (tb CLI 4.x checks its
    token with it before every command and keeps id, name, user and scope)."""
    principal = authenticate(request)
    rt = runtime(request)
    workspace = principal.workspace
    if workspace is None:
        raise ApiError(404, "The user token has no workspace; use a workspace token")
    role = "admin" if principal.is_admin else "guest"
    user = rt.catalog.user_token()
    user_id = principal.token.user_id or (user.user_id if user is not None else "")
    return JSONResponse(
        {
            "id": workspace.id,
            "name": workspace.name,
            "user_id": user_id,
            "user_email": rt.settings.local.user_email,
            "scope": role,
            "role": role,
            "main": None,
            "is_branch": False,
            "plan": "dev",
            "created_at": workspace.created_at,
            "members": [{"id": user_id, "email": rt.settings.local.user_email, "role": "admin"}],
        }
    )


LIMIT_KEYS = ("workspace_rps", "workspace_burst", "datasource_rps", "datasource_burst", "workspace_mbps")


def _managed_workspace(request: Request) -> Workspace:
    principal = _user(request)
    if not principal.is_user:
        raise ApiError(403, "Changing workspace limits needs the user token")
    rt = runtime(request)
    key = request.path_params["workspace_id"]
    workspace = rt.catalog.workspaces.get(key) or rt.catalog.workspace_by_name(key)
    if workspace is None:
        raise ApiError(404, f"Workspace '{key}' not found")
    return workspace


def _limits_json(request: Request, workspace: Workspace) -> dict[str, object]:
    defaults = runtime(request).settings.limits
    effective = {key: workspace.limits.get(key, getattr(defaults, key)) for key in LIMIT_KEYS}
    return {"id": workspace.id, "name": workspace.name, "limits": effective, "overrides": workspace.limits}


async def get_limits(request: Request) -> Response:
    return JSONResponse(_limits_json(request, _managed_workspace(request)))


async def set_limits(request: Request) -> Response:
    """Per-workspace rate limits (0 = unlimited; an empty value removes the override)."""
    workspace = _managed_workspace(request)
    params = await read_params(request)
    limits = dict(workspace.limits)
    for key in LIMIT_KEYS:
        value = params.get(key)
        if value is None:
            continue
        if not value.strip():
            limits.pop(key, None)
            continue
        try:
            number = float(value)
        except ValueError:
            raise ApiError(400, f"'{key}' must be a number, got '{value[:50]}'") from None
        if not math.isfinite(number) or number < 0:
            raise ApiError(400, f"'{key}' must be zero (unlimited) or a finite positive number")
        limits[key] = number
    workspace.limits = limits
    await run_in_threadpool(runtime(request).catalog.save_workspace, workspace)
    return JSONResponse(_limits_json(request, workspace))


routes = [
    Route("/v1/workspace", current_workspace, methods=["GET"]),
    Route("/v0/workspace", current_workspace, methods=["GET"]),
    Route("/v1/workspaces/{workspace_id}/limits", get_limits, methods=["GET"]),
    Route("/v1/workspaces/{workspace_id}/limits", set_limits, methods=["PUT", "POST"]),
    Route("/ping", ping, methods=["GET"]),
    Route("/v0/health", health, methods=["GET"]),
    Route("/tokens", local_tokens, methods=["GET"]),
    Route("/v0/regions", regions, methods=["GET"]),
    Route("/v0/user/workspaces", list_workspaces, methods=["GET"]),
    Route("/v1/user/workspaces", list_workspaces, methods=["GET"]),
    Route("/v1/workspaces", create_workspace, methods=["POST"]),
    Route("/v1/user/workspaces", create_workspace, methods=["POST"]),
    Route("/v1/workspaces/{workspace_id}", delete_workspace, methods=["DELETE"]),
    Route("/v0/workspaces/{workspace_id}", delete_workspace, methods=["DELETE"]),
]
