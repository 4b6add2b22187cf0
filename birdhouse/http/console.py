"""The web console: a static page (birdhouse/console/) over the public API,
plus one small JSON endpoint for live ingestion counters.

The page holds no data of its own: everything it shows comes from the same
token-checked endpoints any client uses, with the token from ``GET /tokens``
on ``birdhouse local`` or typed in (an ADMIN token) on ``birdhouse serve``.
"""

from __future__ import annotations

import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from birdhouse.http.auth import runtime, workspace_principal
from birdhouse.http.errors import ApiError

STATIC = Path(__file__).resolve().parent.parent / "console"
FILES = {"app.js": "text/javascript", "style.css": "text/css"}


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES:
        raise ApiError(404, "Not found")
    return FileResponse(STATIC / name, media_type=FILES[name])


async def stats(request: Request) -> Response:
    """Rows accepted per data source since start (the page turns them into rates)."""
    principal = workspace_principal(request)
    if not principal.is_admin:
        raise ApiError(403, "The console needs an ADMIN token")
    assert principal.workspace is not None
    rt = runtime(request)
    counter = rt.metrics.rows
    datasources = [
        {
            "name": d.name,
            "rows": int(
                counter.value(principal.workspace.name, d.name, "ok")
                + counter.value(principal.workspace.name, d.name, "quarantined")
            ),
        }
        for d in rt.catalog.workspace_datasources(principal.workspace.id)
    ]
    return JSONResponse({"ts": time.time(), "workspace": principal.workspace.name, "datasources": datasources})


routes = [
    Route("/", index, methods=["GET"]),
    Route("/console/{name}", asset, methods=["GET"]),
    Route("/v0/console/stats", stats, methods=["GET"]),
]
