"""Per-request context: a request id (returned as ``X-Request-Id`` and put on
every log line), the request counter by route template, and an access log.

A plain ASGI middleware, not Starlette's BaseHTTPMiddleware: it must not
buffer streamed bodies, and it reads the matched route template from the
scope after routing so metrics have bounded label values.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from birdhouse.ids import new_request_id
from birdhouse.logs import request_id

log = logging.getLogger("birdhouse.access")

# Accept a caller's id only if it is short and harmless in headers and logs.
_INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _INCOMING_ID.fullmatch(incoming) else new_request_id()
        token = request_id.set(rid)
        status = 500
        started = time.monotonic()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
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
