"""The ``tinybird.datasources_ops_log`` service data source: one row per flush.

Tinybird keeps this log so a user can see why data did not arrive; birdhouse
writes one row per append batch delivered to a data source (landing insert),
with its outcome. It lives in each workspace's own database as a table whose
name contains the dot, `` `<db>`.`tinybird.datasources_ops_log` `` (no data
source can be named so), and ``/v0/sql`` maps the written name
``tinybird.datasources_ops_log`` to it for ADMIN tokens only (see
:func:`birdhouse.query.guard._merge_service_names`).

Writing the log never fails a flush: an error here is logged and swallowed.
Replays of a segment may log the same batch again (it is a log of attempts).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

import msgspec

from birdhouse.backends import Backend, BackendError
from birdhouse.catalog.datasources import table_ref
from birdhouse.catalog.models import DataSource, Workspace

__all__ = [
    "ENDPOINT_ERRORS",
    "OPS_LOG",
    "SERVICE_TABLES",
    "OpsLogBuffer",
    "create_endpoint_errors",
    "create_ops_log",
    "create_service_table",
    "flush_row",
    "record_endpoint_error",
    "record_flush",
    "write_rows",
]

log = logging.getLogger("birdhouse.opslog")

OPS_LOG = "tinybird.datasources_ops_log"
# One row per failed endpoint pipe request: why a dashboard shows nothing.
ENDPOINT_ERRORS = "tinybird.endpoint_errors"
# Service data sources readable through /v0/sql (ADMIN only), by written name.
SERVICE_TABLES = frozenset({OPS_LOG, ENDPOINT_ERRORS})

_UNKNOWN_TABLE = 60

_COLUMNS = (
    "event_type String",
    "datasource_id String",
    "datasource_name String",
    "result String",
    "elapsed_time Float64",
    "error Nullable(String)",
    "rows UInt64",
    "rows_quarantine UInt64",
)


class _Row(msgspec.Struct):
    timestamp: str
    event_type: str
    datasource_id: str
    datasource_name: str
    result: str
    elapsed_time: float
    error: str | None
    rows: int
    rows_quarantine: int


def create_ops_log(backend: Backend, workspace: Workspace) -> None:
    """Create the workspace's ops log table if missing (idempotent)."""
    caps = backend.capabilities
    # Old servers (no DateTime64, no table TTL) get second precision and no expiry.
    timestamp = "timestamp DateTime64(6, 'UTC')" if caps.datetime64 else "timestamp DateTime('UTC')"
    ttl = " TTL toDateTime(timestamp) + INTERVAL 30 DAY" if caps.ttl else ""
    backend.command(
        f"CREATE TABLE IF NOT EXISTS {table_ref(workspace, OPS_LOG)} ({', '.join((timestamp, *_COLUMNS))}) "
        f"ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (datasource_id, timestamp){ttl}"
    )


def flush_row(
    backend: Backend,
    datasource: DataSource,
    rows: int,
    quarantined: int,
    elapsed: float,
    error: str | None,
    event_type: str = "append-hfi",
) -> bytes:
    """One JSONEachRow line for a flush of ``datasource``: ``error`` None means it committed.

    ``event_type`` is Tinybird's: ``append-hfi`` for Events API appends (the
    default), ``append`` for Data Sources API imports.
    """
    now = dt.datetime.now(dt.UTC)
    row = _Row(
        timestamp=now.strftime("%Y-%m-%d %H:%M:%S.%f" if backend.capabilities.datetime64 else "%Y-%m-%d %H:%M:%S"),
        event_type=event_type,
        datasource_id=datasource.id,
        datasource_name=datasource.name,
        result="error" if error is not None else "ok",
        elapsed_time=float(elapsed),
        error=error,
        rows=rows,
        rows_quarantine=quarantined,
    )
    return msgspec.json.encode(row) + b"\n"


def write_rows(backend: Backend, workspace: Workspace, data: bytes) -> bool:
    """Insert ops log lines (creating the table on first use). False if they could
    not be written (logged, never raised)."""
    for attempt in range(2):
        try:
            backend.insert(table_ref(workspace, OPS_LOG), data, "JSONEachRow", settings={"insert_deduplicate": 0})
            return True
        except BackendError as exc:
            if attempt == 0 and exc.code == _UNKNOWN_TABLE:
                try:
                    create_ops_log(backend, workspace)
                    continue
                except BackendError as create_exc:
                    exc = create_exc
            log.error("could not write %s of workspace %s: %s", OPS_LOG, workspace.name, exc.message)
            return False
    return False


def record_flush(
    backend: Backend,
    workspace: Workspace,
    datasource: DataSource,
    rows: int,
    quarantined: int,
    elapsed: float,
    error: str | None,
    event_type: str = "append-hfi",
) -> bool:
    """Log one flush of ``datasource`` now (see :func:`flush_row`)."""
    return write_rows(backend, workspace, flush_row(backend, datasource, rows, quarantined, elapsed, error, event_type))


class OpsLogBuffer:
    """Flush rows kept for one insert per workspace, written apart from the
    flushes (the flusher's thread adds, another writes: hence the lock)."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[Workspace, list[bytes]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(lines) for _, lines in self._pending.values())

    def add(self, workspace: Workspace, line: bytes) -> None:
        with self._lock:
            self._pending.setdefault(workspace.id, (workspace, []))[1].append(line)

    def write(self, backend: Backend) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for workspace, lines in pending.values():
            write_rows(backend, workspace, b"".join(lines))


_ERROR_COLUMNS = ("pipe_id String", "pipe_name String", "params String", "status_code UInt16", "error String")


class _EndpointError(msgspec.Struct):
    timestamp: str
    pipe_id: str
    pipe_name: str
    params: str
    status_code: int
    error: str


def create_endpoint_errors(backend: Backend, workspace: Workspace) -> None:
    caps = backend.capabilities
    timestamp = "timestamp DateTime64(6, 'UTC')" if caps.datetime64 else "timestamp DateTime('UTC')"
    ttl = " TTL toDateTime(timestamp) + INTERVAL 30 DAY" if caps.ttl else ""
    backend.command(
        f"CREATE TABLE IF NOT EXISTS {table_ref(workspace, ENDPOINT_ERRORS)} "
        f"({', '.join((timestamp, *_ERROR_COLUMNS))}) "
        f"ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (pipe_name, timestamp){ttl}"
    )


def create_service_table(backend: Backend, workspace: Workspace, name: str) -> None:
    """Create the service table ``name`` (one of SERVICE_TABLES) if missing."""
    (create_ops_log if name == OPS_LOG else create_endpoint_errors)(backend, workspace)


def record_endpoint_error(
    backend: Backend,
    workspace: Workspace,
    pipe_id: str,
    pipe_name: str,
    params: dict[str, str],
    status: int,
    error: str,
) -> bool:
    """Log one failed endpoint request (never raises; False if not written)."""
    now = dt.datetime.now(dt.UTC)
    row = _EndpointError(
        timestamp=now.strftime("%Y-%m-%d %H:%M:%S.%f" if backend.capabilities.datetime64 else "%Y-%m-%d %H:%M:%S"),
        pipe_id=pipe_id,
        pipe_name=pipe_name,
        params=msgspec.json.encode(params).decode(),
        status_code=status,
        error=error,
    )
    try:
        create_endpoint_errors(backend, workspace)
        backend.insert(
            table_ref(workspace, ENDPOINT_ERRORS),
            msgspec.json.encode(row) + b"\n",
            "JSONEachRow",
            settings={"insert_deduplicate": 0},
        )
    except BackendError as exc:
        log.error("could not write %s for %s: %s", ENDPOINT_ERRORS, pipe_name, exc.message)
        return False
    return True
