"""Token extraction and authentication for every route (SPEC §1.3).

The ``token`` query parameter wins over ``Authorization: Bearer``: tb CLI 5
puts ``token=`` in the query string of every call.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.types import Scope

from birdhouse.catalog.access import AuthError, Principal
from birdhouse.http.errors import ApiError
from birdhouse.runtime import Runtime

_QUERY_KEY = "birdhouse.query"


def query_param(request: Request, key: str) -> str | None:
    """The first occurrence of a query parameter (SPEC §1.2; Starlette's
    ``QueryParams.get`` returns the last). Parsed once per request, as
    Starlette parses it, into a first-wins dict kept in the scope."""
    params: dict[str, str] | None = request.scope.get(_QUERY_KEY)
    if params is None:
        params = request.scope[_QUERY_KEY] = parse_query(request.scope["query_string"].decode("latin-1"))
    return params.get(key)


def parse_query(query: str) -> dict[str, str]:
    """``parse_qsl(query, keep_blank_values=True)`` into a first-wins dict, as
    Starlette parses a query string. Written out because ``parse_qsl`` was a
    tenth of a small event request's own time; most fields need no unquoting."""
    params: dict[str, str] = {}
    for field in query.split("&") if query else ():
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name or "%" in name:
            name = unquote(name.replace("+", " "))
        if "+" in value or "%" in value:
            value = unquote(value.replace("+", " "))
        params.setdefault(name, value)
    return params


_HEADERS_KEY = "birdhouse.headers"


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's first value, as Starlette's ``Headers.get`` gives it
    (ASGI servers send lower-case names), from a dict built once per request:
    ``Headers.get`` scans and re-encodes on every call."""
    found: dict[bytes, bytes] | None = scope.get(_HEADERS_KEY)
    if found is None:
        found = {}
        for key, value in scope["headers"]:
            found.setdefault(key, value)
        scope[_HEADERS_KEY] = found
    value = found.get(name)
    return None if value is None else value.decode("latin-1")


def presented_token(request: Request) -> str | None:
    token = query_param(request, "token")
    if token is not None and token.strip():
        return token.strip()
    authorization = header(request.scope, b"authorization")
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


_RUNTIME_KEY = "birdhouse.runtime"


def runtime(request: Request) -> Runtime:
    # Kept in the scope: a request asks for it several times, and Starlette's
    # State attribute lookup goes through __getattr__ each time.
    found: Runtime | None = request.scope.get(_RUNTIME_KEY)
    if found is None:
        found = request.scope[_RUNTIME_KEY] = request.app.state.runtime
    return found


def authenticate(request: Request) -> Principal:
    token = presented_token(request)
    if token is None:
        raise AuthError("Invalid token")
    return runtime(request).catalog.authenticate(token)


def workspace_principal(request: Request) -> Principal:
    """A principal that belongs to a workspace (not the user token)."""
    principal = authenticate(request)
    if principal.workspace is None:
        raise ApiError(403, "This operation needs a workspace token, not a user token")
    return principal
