"""The ASGI application.

``create_app(settings, local=...)`` builds a Starlette app whose lifespan opens
the runtime (storage, catalog). It is server-agnostic: granian serves it in
production, uvicorn and httpx's ASGI transport run it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from birdhouse.backends import BackendError
from birdhouse.catalog.access import AuthError
from birdhouse.catalog.catalog import Catalog, CatalogError
from birdhouse.config import Settings, load_settings
from birdhouse.http import (
    analyze,
    console,
    datasources,
    deadletter,
    events,
    imports,
    local,
    metrics,
    openapi,
    pipes,
    sql,
    tokens,
)
from birdhouse.http.errors import (
    ApiError,
    api_error_handler,
    auth_error_handler,
    catalog_error_handler,
    http_error_handler,
    internal_error_handler,
)
from birdhouse.http.middleware import App, RequestContext
from birdhouse.logs import configure_logging
from birdhouse.runtime import open_runtime

log = logging.getLogger("birdhouse")

# Set by the CLI for server workers that build the app in their own process.
SETTINGS_ENV = "BIRDHOUSE_RUNTIME_SETTINGS"
LOCAL_ENV = "BIRDHOUSE_RUNTIME_LOCAL"


def routes() -> list[BaseRoute]:
    return [
        *local.routes,
        *events.routes,
        *tokens.routes,
        *datasources.routes,
        *sql.routes,
        *analyze.routes,
        *metrics.routes,
        *console.routes,
        *pipes.routes,
        *imports.routes,
        *openapi.routes,
        *deadletter.routes,
    ]


# A young-generation collection every 50,000 net container allocations
# instead of CPython's 700, and the older generations correspondingly rarer
# (defaults 10, 10): see tune_gc.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """For a process that serves only this app. Everything made at start-up
    (the catalog, compiled converters, the engine's bindings) lives as long as
    the process: frozen, the cyclic collector stops re-scanning it. A request
    allocates dozens of short-lived containers, almost all freed by reference
    counting; with CPython's default threshold the collector ran several
    hundred times a second, and its full collections stalled the event loop
    for ≈ 20 ms: half of the p99 of small event requests (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(settings: Settings, *, local_mode: bool = True, long_running: bool = False) -> Starlette:
    """``long_running``: this process serves only this app (``birdhouse local``
    or ``serve``), so the lifespan may tune process-wide state for it (tune_gc)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await run_in_threadpool(open_runtime, settings, local_mode)
        if local_mode and settings.server.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning(
                "GET /tokens hands out admin tokens and this server listens on %s: "
                "use `birdhouse serve` for anything but local development",
                settings.server.host,
            )
        app.state.runtime = runtime
        runtime.flusher.start()
        if long_running:
            tune_gc()
        refresher = None
        if not runtime.backend.dsn.startswith("chdb://"):
            # Other nodes share this catalog: pick up their tokens and data sources.
            refresher = asyncio.create_task(_refresh_catalog(runtime.catalog, settings.storage.catalog_refresh_s))
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
            # Stop taking events, deliver what is pending within the grace
            # period; whatever is left stays in the WAL for the next start.
            runtime.accepting = False
            await runtime.flusher.stop(settings.server.shutdown_grace_s)
            await runtime.ingestor.offload.aclose()
            await run_in_threadpool(runtime.close)

    return App(
        middleware=[Middleware(RequestContext, direct=[r for r in events.routes if r.endpoint is events.ingest])],
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            AuthError: auth_error_handler,
            CatalogError: catalog_error_handler,
            Exception: internal_error_handler,
        },
    )


async def _refresh_catalog(catalog: Catalog, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await run_in_threadpool(catalog.refresh)
        except BackendError as exc:
            log.warning("catalog refresh failed (keeping the cached catalog): %s", exc.message)


def app_from_env() -> Starlette:
    """Factory for server workers: settings arrive as JSON in the environment."""
    raw = os.environ.get(SETTINGS_ENV)
    layers = json.loads(raw) if raw else {}
    overrides = {f"{section}.{key}": value for section, values in layers.items() for key, value in values.items()}
    settings = load_settings(environ={}, overrides=overrides)
    configure_logging(settings.server.log_level, settings.server.log_format)
    return create_app(settings, local_mode=os.environ.get(LOCAL_ENV, "1") == "1", long_running=True)
