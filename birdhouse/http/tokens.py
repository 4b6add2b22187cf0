"""Tokens API (SPEC §7.5): static tokens of the caller's workspace."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from birdhouse.catalog.access import Principal
from birdhouse.catalog.catalog import Catalog
from birdhouse.catalog.jwt import encode_jwt
from birdhouse.catalog.models import Token
from birdhouse.catalog.tokens import ADMIN_USER, JWT_SCOPES, RESOURCE_SCOPES, USER, Scope, ScopeError, parse_scope
from birdhouse.http.auth import runtime, workspace_principal
from birdhouse.http.errors import ApiError
from birdhouse.http.params import read_params

MAX_TOKEN_NAME = 255


def _manager(request: Request) -> Principal:
    principal = workspace_principal(request)
    if not principal.can_manage_tokens():
        raise ApiError(403, "This operation needs a token with TOKENS or ADMIN scope")
    return principal


def scope_json(catalog: Catalog, scope: Scope) -> dict[str, str]:
    shown: dict[str, str] = {"type": scope.type}
    if scope.resource is not None:
        if scope.type.startswith("PIPES:"):
            pipe = catalog.pipes.get(scope.resource)
            shown["resource"] = pipe.name if pipe else scope.resource
        else:
            datasource = catalog.datasources.get(scope.resource)
            shown["resource"] = datasource.name if datasource else scope.resource
    if scope.filter is not None:
        shown["filter"] = scope.filter
    return shown


def token_json(request: Request, token: Token) -> dict[str, Any]:
    rt = runtime(request)
    return {
        "id": token.id,
        "name": token.name,
        "description": token.description,
        "scopes": [scope_json(rt.catalog, s) for s in token.scopes],
        "token": token.token,
        "origin": {"type": token.origin},
        "host": rt.settings.server.region,
    }


def resolve_scopes(catalog: Catalog, workspace_id: str, texts: list[str]) -> list[Scope]:
    """Parse scope strings and store data sources and pipes by id (SPEC §7.2).

    A PIPES scope naming a pipe that does not exist yet keeps the name (the tb
    CLI creates a pipe's tokens around the pipe itself); creating that pipe
    rebinds it to the pipe's id (:func:`birdhouse.catalog.pipes.create_pipe`)."""
    scopes: list[Scope] = []
    for text in texts:
        try:
            scope = parse_scope(text)
        except ScopeError as exc:
            raise ApiError(400, str(exc)) from None
        if scope.type in RESOURCE_SCOPES and scope.type.startswith("DATASOURCES:"):
            assert scope.resource is not None
            datasource = catalog.find_datasource(workspace_id, scope.resource)
            if datasource is None:
                raise ApiError(400, f"Data Source '{scope.resource}' not found for scope '{text}'")
            scope = Scope(scope.type, datasource.id, scope.filter)
        elif scope.type in RESOURCE_SCOPES and scope.type.startswith("PIPES:"):
            assert scope.resource is not None
            pipe = catalog.find_pipe(workspace_id, scope.resource)
            if pipe is not None:
                scope = Scope(scope.type, pipe.id, scope.filter)
        if scope not in scopes:
            scopes.append(scope)
    return scopes


def _find(request: Request, principal: Principal) -> Token:
    assert principal.workspace is not None
    key = request.path_params["token"]
    token = runtime(request).catalog.find_token(principal.workspace.id, key)
    if token is None:
        raise ApiError(404, f"Token '{key}' not found")
    return token


async def list_tokens(request: Request) -> Response:
    principal = _manager(request)
    assert principal.workspace is not None
    tokens = runtime(request).catalog.workspace_tokens(principal.workspace.id)
    return JSONResponse({"tokens": [token_json(request, t) for t in tokens]})


async def get_token(request: Request) -> Response:
    return JSONResponse(token_json(request, _find(request, _manager(request))))


async def create_token(request: Request) -> Response:
    principal = _manager(request)
    assert principal.workspace is not None
    if request.query_params.get("expiration_time") is not None:
        return await _create_jwt(request, principal)
    params = await read_params(request)
    name = (params.get("name") or "").strip()
    if not name or len(name) > MAX_TOKEN_NAME:
        raise ApiError(400, f"A token needs a 'name' of 1 to {MAX_TOKEN_NAME} characters")
    catalog = runtime(request).catalog
    scopes = resolve_scopes(catalog, principal.workspace.id, params.getlist("scope"))
    token = await run_in_threadpool(catalog.mint, principal.workspace, name, scopes, params.get("description") or "")
    return JSONResponse(token_json(request, token))


async def _create_jwt(request: Request, principal: Principal) -> Response:
    """``POST /v0/tokens?expiration_time=<unix s>`` with JSON ``{name, scopes,
    limits?}`` → ``{"token": <JWT>}`` signed with the workspace admin token."""
    assert principal.workspace is not None
    raw_expiry = request.query_params.get("expiration_time", "")
    if not raw_expiry.isdigit():
        raise ApiError(400, "expiration_time must be a Unix timestamp in seconds")
    try:
        body = msgspec.json.decode(await request.body() or b"{}")
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"Invalid JSON body: {exc}") from None
    if not isinstance(body, dict) or not str(body.get("name") or "").strip():
        raise ApiError(400, "A JWT needs a JSON body with a 'name' and 'scopes'")
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise ApiError(400, "A JWT needs at least one scope")
    for scope in scopes:
        if not isinstance(scope, dict) or scope.get("type") not in JWT_SCOPES or not scope.get("resource"):
            raise ApiError(400, f"Invalid JWT scope {scope!r}: use {', '.join(sorted(JWT_SCOPES))} with a resource")
    catalog = runtime(request).catalog
    admin = catalog.find_token(principal.workspace.id, "Workspace admin token")
    if admin is None:
        raise ApiError(500, "The workspace has no admin token to sign with")
    claims: dict[str, Any] = {
        "workspace_id": principal.workspace.id,
        "name": str(body["name"]).strip(),
        "exp": int(raw_expiry),
        "scopes": scopes,
    }
    if isinstance(body.get("limits"), dict):
        claims["limits"] = body["limits"]
    return JSONResponse({"token": encode_jwt(claims, admin.token)})


async def update_token(request: Request) -> Response:
    principal = _manager(request)
    assert principal.workspace is not None
    token = _find(request, principal)
    params = await read_params(request)
    catalog = runtime(request).catalog
    if params.getlist("scope"):
        internal = [s for s in token.scopes if s.type in (ADMIN_USER, USER)]
        token.scopes = internal + resolve_scopes(catalog, principal.workspace.id, params.getlist("scope"))
    new_name = (params.get("name") or "").strip()
    if new_name and new_name != token.name:
        if catalog.find_token(principal.workspace.id, new_name) is not None:
            raise ApiError(400, f"Token with name '{new_name}' already exists")
        token.name = new_name
    if params.get("description") is not None:
        token.description = params.get("description") or ""
    await run_in_threadpool(catalog.save_token, token)
    return JSONResponse(token_json(request, token))


async def delete_token(request: Request) -> Response:
    principal = _manager(request)
    token = _find(request, principal)
    await run_in_threadpool(runtime(request).catalog.delete_token, token)
    return Response(status_code=204)


async def refresh_token(request: Request) -> Response:
    principal = _manager(request)
    token = _find(request, principal)
    refreshed = await run_in_threadpool(runtime(request).catalog.refresh_token, token)
    return JSONResponse(token_json(request, refreshed))


routes = [
    Route("/v0/tokens", list_tokens, methods=["GET"]),
    Route("/v0/tokens", create_token, methods=["POST"]),
    Route("/v0/tokens/", create_token, methods=["POST"]),
    Route("/v0/tokens/{token}", get_token, methods=["GET"]),
    Route("/v0/tokens/{token}", update_token, methods=["PUT"]),
    Route("/v0/tokens/{token}", delete_token, methods=["DELETE"]),
    Route("/v0/tokens/{token}/refresh", refresh_token, methods=["POST"]),
]
