"""``GET /metrics``: Prometheus text format (birdhouse/metrics.py)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from birdhouse.http.auth import presented_token, runtime
from birdhouse.http.errors import ApiError


async def metrics(request: Request) -> Response:
    rt = runtime(request)
    required = rt.settings.server.metrics_token
    if required:
        given = presented_token(request) or ""
        if not hmac.compare_digest(given.encode(), required.encode()):
            raise ApiError(403, "Invalid token")
    return PlainTextResponse(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [Route("/metrics", metrics, methods=["GET"])]
