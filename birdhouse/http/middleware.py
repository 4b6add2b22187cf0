"""Per-request context: a request id (returned as ``X-Request-Id`` and put on
every log line), the request counter by route template, and an access log.

A plain ASGI middleware, not Starlette's BaseHTTPMiddleware: it must not
buffer streamed bodies, and it reads the matched route template from the
scope after routing so metrics have bounded label values.

``POST /v0/events`` is dispatched from here straight to its endpoint, and
:class:`App` calls this middleware first for it: the router's matching and
Starlette's two exception middlewares cost a quarter of a small event
request's time on the event loop, and that endpoint turns every exception
into its own response anyway.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from birdhouse.http.auth import header
from birdhouse.ids import new_request_id
from birdhouse.logs import request_id

log = logging.getLogger("birdhouse.access")

# Accept a caller's id only if it is short and harmless in headers and logs.
_INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


Endpoint = Callable[[Request], Awaitable[Response]]


class RequestContext:
    def __init__(self, app: ASGIApp, direct: Sequence[BaseRoute] = ()) -> None:
        """``direct``: POST routes with exact paths whose endpoints never raise."""
        self.app = app
        self._direct: dict[str, Route] = {
            r.path: r for r in direct if isinstance(r, Route) and r.methods is not None and "POST" in r.methods
        }

    def is_direct(self, scope: Scope) -> bool:
        return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self._direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header(scope, b"x-request-id") or ""
        rid = incoming if _INCOMING_ID.fullmatch(incoming) else new_request_id()
        token = request_id.set(rid)
        status = 500
        started = time.monotonic()
        route = self._direct.get(scope["path"]) if scope["method"] == "POST" else None
        try:
            if route is None:

                async def send_with_id(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                    await send(message)

                await self.app(scope, receive, send_with_id)
            else:
                # A direct endpoint returns its response: the id goes on it here,
                # without wrapping every send of the request.
                scope["route"] = route
                endpoint: Endpoint = route.endpoint
                response = await endpoint(Request(scope, receive, send))
                response.raw_headers.append((b"x-request-id", rid.encode()))
                status = response.status_code
                await response(scope, receive, send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            state = getattr(scope.get("app"), "state", None)
            runtime = getattr(state, "runtime", None)
            if runtime is not None:
                runtime.metrics.requests.inc(1, template, scope["method"], str(status))
            if runtime is not None and runtime.settings.server.access_log:
                self._access(scope, status, started)
            request_id.reset(token)

    @staticmethod
    def _access(scope: Scope, status: int, started: float) -> None:
        duration_ms = round((time.monotonic() - started) * 1000, 2)
        log.info(
            "%s %s %s %.1fms",
            scope["method"],
            scope["path"],
            status,
            duration_ms,
            extra={"method": scope["method"], "path": scope["path"], "status": status, "duration_ms": duration_ms},
        )


class App(Starlette):
    """Starlette that hands :class:`RequestContext`'s direct routes to it
    without passing through ``ServerErrorMiddleware`` first."""

    _context: RequestContext | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = self._context
        if context is not None and context.is_direct(scope):
            scope["app"] = self
            await context(scope, receive, send)
            return
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
            self._context = _find_context(self.middleware_stack)
        await super().__call__(scope, receive, send)


def _find_context(app: ASGIApp | None) -> RequestContext | None:
    while app is not None and not isinstance(app, RequestContext):
        app = getattr(app, "app", None)
    return app
