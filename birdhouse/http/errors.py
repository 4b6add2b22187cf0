"""Error responses.

Every API except ``/v0/events`` answers errors as JSON ``{"error": "<text>"}``
(SPEC §10); ``/v0/events`` answers ``text/plain`` (SPEC §2.2, D5) because the
tb CLI treats any JSON body there as success.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from birdhouse.catalog.access import AuthError
from birdhouse.catalog.catalog import CatalogError

log = logging.getLogger("birdhouse.http")


class ApiError(Exception):
    """Raised anywhere under a route; becomes a JSON error response."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def text_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_error(exc.status, exc.message, exc.headers)


async def auth_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return json_error(exc.status, exc.message)


async def catalog_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CatalogError)
    return json_error(exc.status, exc.message)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the API's JSON shape."""
    assert isinstance(exc, HTTPException)
    return json_error(exc.status_code, exc.detail, dict(exc.headers or {}))


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    # Never a traceback on the wire; the log has it.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_error(500, "Internal server error")
