"""What a running node holds: settings, the backend, the catalog.

``open_runtime`` is the start-up sequence (open storage, load the catalog,
create the default workspace on first start); ``Runtime.close`` undoes it.
Routes reach the runtime through ``request.app.state.runtime``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from birdhouse.backends import Backend, open_backend
from birdhouse.catalog.autocreate import Autocreator
from birdhouse.catalog.catalog import Catalog
from birdhouse.catalog.models import Token, Workspace, new_uuid
from birdhouse.catalog.secret import load_or_create_secret, shared_secret
from birdhouse.catalog.tokens import USER, Scope
from birdhouse.config import Settings
from birdhouse.http.limits import EventLimits
from birdhouse.metrics import Metrics
from birdhouse.pipeline.dedup import DedupIndex
from birdhouse.pipeline.flusher import Flusher
from birdhouse.pipeline.ingest import Ingestor
from birdhouse.pipeline.offload import auto_processes
from birdhouse.wal import Wal

log = logging.getLogger("birdhouse")

ADMIN_TOKEN_FILE = "admin_token"  # noqa: S105 - a file name, not a secret


@dataclass
class Runtime:
    settings: Settings
    backend: Backend
    catalog: Catalog
    # `birdhouse local` serves GET /tokens; `birdhouse serve` never does.
    local: bool
    wal: Wal
    ingestor: Ingestor
    flusher: Flusher
    dedup: DedupIndex
    limits: EventLimits
    autocreator: Autocreator
    metrics: Metrics
    # False once shutdown began: new events get 503 (SPEC §8.2 SIGTERM).
    accepting: bool = True
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        try:
            self.ingestor.committer.close()
            self.wal.close()
        finally:
            self.backend.close()

    # Local-compatibility helpers (SPEC §10.4) --------------------------------

    def default_workspace(self) -> Workspace | None:
        return self.catalog.workspace_by_name(self.settings.local.default_workspace)

    def workspace_admin_token(self, workspace: Workspace) -> Token | None:
        return self.catalog.find_token(workspace.id, "Workspace admin token")

    def user_admin_token(self, workspace: Workspace) -> Token | None:
        return self.catalog.find_token(workspace.id, f"admin {self.settings.local.user_email}")


def _ensure_user_token(catalog: Catalog, pinned: str) -> Token:
    token = catalog.user_token()
    if token is None:
        token = catalog.mint(None, "user token", [Scope(USER)], user_id=new_uuid(), pinned=pinned)
    elif pinned and token.token != pinned:
        token.token = pinned
        catalog.save_token(token)
    return token


def _bootstrap(runtime: Runtime) -> None:
    settings, catalog = runtime.settings, runtime.catalog
    user = _ensure_user_token(catalog, os.environ.get("TB_LOCAL_USER_TOKEN", ""))
    workspace = runtime.default_workspace()
    first_start = workspace is None
    if workspace is None:
        workspace = catalog.create_workspace(settings.local.default_workspace, user.user_id, settings.local.user_email)
    admin = runtime.workspace_admin_token(workspace)
    pinned = os.environ.get("TB_LOCAL_WORKSPACE_TOKEN", "")
    if admin is not None and pinned and admin.token != pinned:
        admin.token = pinned
        catalog.save_token(admin)
    if first_start and not runtime.local and admin is not None:
        # `serve` never hands tokens out over HTTP; the operator reads this file once.
        path = settings.data_path / ADMIN_TOKEN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(admin.token + "\n")
        log.warning("first start: the workspace admin token is in %s (mode 0600)", path)


def open_runtime(settings: Settings, local: bool) -> Runtime:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    backend = open_backend(settings.storage_dsn)
    try:
        catalog = Catalog(backend, b"", settings.server.region, settings.storage.catalog_database)
        catalog.store.ensure_schema()
        if settings.auth.token_secret or backend.dsn.startswith("chdb://"):
            catalog.secret = load_or_create_secret(settings.data_path, settings.auth.token_secret)
        else:
            catalog.secret = shared_secret(catalog.store)
        catalog.open()
        _check_wal_mode(settings)
        wal = Wal(
            settings.data_path / "wal",
            fsync=settings.wal.fsync,  # type: ignore[arg-type]
            interval_ms=settings.wal.interval_ms,
            max_bytes=settings.wal.max_bytes,
            segment_max_bytes=settings.wal.segment_max_bytes,
        )
    except BaseException:
        backend.close()
        raise
    try:
        dedup = DedupIndex(backend, settings.storage.catalog_database, settings.dedup.window_s)
        dedup.open(wal)
        metrics = Metrics()
        flusher = Flusher(
            wal, backend, catalog, settings.flush, settings.data_path / "deadletter", dedup=dedup, metrics=metrics
        )
        runtime = Runtime(
            settings=settings,
            backend=backend,
            catalog=catalog,
            local=local,
            wal=wal,
            ingestor=Ingestor(
                wal,
                settings.events.expand_json_array_lines,
                settings.events.max_line_bytes,
                _conversion_processes(settings),
            ),
            flusher=flusher,
            dedup=dedup,
            limits=EventLimits(settings),
            autocreator=Autocreator(catalog, settings),
            metrics=metrics,
        )
        _register_gauges(metrics, runtime)
        _bootstrap(runtime)
    except BaseException:
        wal.close()
        backend.close()
        raise
    return runtime


def _conversion_processes(settings: Settings) -> int:
    wanted = settings.events.conversion_processes
    return auto_processes(os.cpu_count()) if wanted < 0 else wanted


def _register_gauges(metrics: Metrics, runtime: Runtime) -> None:
    wal, flusher, offload = runtime.wal, runtime.flusher, runtime.ingestor.offload
    gauges = [
        ("birdhouse_wal_segments", "WAL segment files on disk (sealed and active).", lambda: wal.stats().segments),
        ("birdhouse_wal_bytes", "Bytes of WAL segment files on disk.", lambda: wal.total_bytes),
        ("birdhouse_wal_fsyncs", "fdatasync calls on the WAL since start.", lambda: wal.stats().fsyncs),
        ("birdhouse_backend_down_seconds", "How long the backend has been failing (0 = ok).", flusher.backend_down_for),
        ("birdhouse_flushed_through_segment", "Highest WAL segment delivered.", lambda: flusher.flushed_through),
        ("birdhouse_conversions_offloaded", "Large bodies converted by a worker process.", lambda: offload.offloaded),
        (
            "birdhouse_conversions_in_process",
            "Large bodies converted in-process because no worker process could (not started, restarting, failed).",
            lambda: offload.fallbacks,
        ),
    ]
    for name, help_text, read in gauges:
        metrics.gauge(name, help_text, read)


def _check_wal_mode(settings: Settings) -> None:
    if settings.wal.fsync not in ("always", "interval", "off"):
        raise ValueError(f"wal.fsync must be always, interval or off, not {settings.wal.fsync!r}")
    if settings.wal.fsync == "off":
        log.warning("wal.fsync=off: a 202 only means the rows reached the page cache (development only)")
