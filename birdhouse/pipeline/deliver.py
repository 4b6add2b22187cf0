"""Deliver one sealed WAL segment to the backend (blocking).

A segment's records are grouped by (workspace, data source, column list) in
log order; each group becomes one landing INSERT whose dedup token is derived
from the request ids in it, and each record's quarantine rows one INSERT with
the request's own token. Replaying a segment after a crash between the
INSERTs and the segment's deletion therefore inserts nothing twice
(DESIGN invariant 3).

Success of :func:`deliver_segment` means every row of the segment is either
committed in the backend, or written to the dead-letter area with its error
(a permanent failure), or discarded because its data source was dropped. It
raises :class:`Transient` when the backend could not take the rows now; the
caller keeps the segment and retries later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from birdhouse.backends import Backend, BackendError, BackendUnavailable
from birdhouse.catalog.catalog import Catalog
from birdhouse.catalog.datasources import table_ref
from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.catalog.opslog import OpsLogBuffer, flush_row, write_rows
from birdhouse.catalog.pipes import mv_failure
from birdhouse.pipeline.dedup import DedupIndex
from birdhouse.pipeline.records import AcceptedBatch, decode_batch, landing_token, quarantine_token
from birdhouse.schema.engine import quarantine_columns

log = logging.getLogger("birdhouse.flush")

# Engine errors worth retrying: too many parts / simultaneous queries,
# timeouts, memory limits, network and "table is read-only" states.
TRANSIENT_CODES = frozenset({159, 160, 202, 209, 210, 241, 242, 252, 319, 425, 999})

INSERT_SETTINGS: dict[str, str | int] = {
    # A flush spanning many partitions must not fail (SPEC §8.2).
    "max_partitions_per_insert_block": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


class Transient(Exception):
    """The backend could not take the rows now; keep the segment, retry later."""


@dataclass(frozen=True)
class Failure:
    """Why a request's rows are not (all) where they belong.

    ``dead_letter``: parked with the error, nothing in the table (→ 202, the rows
    are durable); ``mv_partial``: landing rows stored, materialized views missed
    them (E21, 422); ``mv_nothing_stored``: a Null landing table whose view
    failed, the rows were dropped for the client to retry (E22, 503)."""

    kind: str
    detail: str


@dataclass
class Delivery:
    rows: int = 0
    quarantined: int = 0
    # request id → failure, for requests whose rows did not all land.
    failed: dict[str, Failure] = field(default_factory=dict)


def _groups(batches: Iterable[AcceptedBatch]) -> list[list[AcceptedBatch]]:
    groups: dict[tuple[str, str, tuple[str, ...]], list[AcceptedBatch]] = {}
    for batch in batches:
        groups.setdefault((batch.workspace_id, batch.datasource_id, batch.columns), []).append(batch)
    return list(groups.values())


def _insert(backend: Backend, table: str, data: bytes, columns: tuple[str, ...] | None, token: str) -> None:
    try:
        backend.insert(
            table,
            data,
            "JSONEachRow",
            columns=columns,
            settings={**INSERT_SETTINGS, "insert_deduplication_token": token},
        )
    except BackendUnavailable as exc:
        raise Transient(exc.message) from exc
    except BackendError as exc:
        if exc.code in TRANSIENT_CODES:
            raise Transient(exc.message) from exc
        raise


def insert_quarantine(backend: Backend, catalog: Catalog, batch: AcceptedBatch) -> None:
    """Insert one request's quarantine rows now (same token as its later flush)."""
    workspace = catalog.workspaces.get(batch.workspace_id)
    datasource = catalog.datasources.get(batch.datasource_id)
    if workspace is None or datasource is None or not batch.quarantined_rows:
        return
    # Name the columns (all but insertion_date): old servers evaluate the
    # DEFAULT now() only for columns missing from an explicit list.
    columns = tuple(c.name for c in quarantine_columns(datasource.columns)[:-1])
    _insert(
        backend,
        table_ref(workspace, datasource.quarantine_name),
        batch.quarantine,
        columns,
        quarantine_token(batch.request_id),
    )


def _dead_letter(directory: Path, group: list[AcceptedBatch], error: str, failed_views: tuple[str, ...] = ()) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{group[0].datasource_id}.msgpack"
    document: dict[str, object] = {"error": error, "batches": [msgspec.msgpack.encode(b) for b in group]}
    if failed_views:
        document["failed_views"] = list(failed_views)
    path = directory / name
    with open(path, "wb") as handle:
        handle.write(msgspec.msgpack.encode(document))
        handle.flush()
        os.fsync(handle.fileno())
    log.error("rows of %d requests moved to %s: %s", len(group), path, error)


def deliver_segment(
    backend: Backend,
    catalog: Catalog,
    payloads: list[bytes],
    dead_letter_dir: Path,
    dedup: DedupIndex | None = None,
    waiting: frozenset[str] = frozenset(),
    ops_log: OpsLogBuffer | None = None,
) -> Delivery:
    """``waiting`` holds the request ids with a ``wait=true`` client: when a
    materialized view fails on a ``Null`` landing table (nothing stored), their
    rows are dropped and they are told to retry (E22) instead of being parked.
    Ops log rows go to ``ops_log`` for the caller to write, else are written here."""
    run = _SegmentRun(backend, catalog, dead_letter_dir, dedup, waiting, ops_log)
    batches = [decode_batch(p) for p in payloads]
    for group in _groups(batches):
        run.deliver_group(group)
    if dedup is not None:
        try:
            dedup.persist([b for b in batches if b.request_id not in run.delivery.failed])
        except BackendUnavailable as exc:
            raise Transient(exc.message) from exc
        except BackendError as exc:
            # The keys stay valid in memory; only a restart would forget them.
            log.error("could not record idempotency keys: %s", exc.message)
    return run.delivery


@dataclass
class _SegmentRun:
    backend: Backend
    catalog: Catalog
    dead_letter_dir: Path
    dedup: DedupIndex | None
    waiting: frozenset[str]
    ops_log: OpsLogBuffer | None = None
    delivery: Delivery = field(default_factory=Delivery)

    def log_flush(
        self,
        workspace: Workspace,
        datasource: DataSource,
        rows: int,
        quarantined: int,
        started: float,
        error: str | None,
    ) -> None:
        line = flush_row(self.backend, datasource, rows, quarantined, time.monotonic() - started, error)
        if self.ops_log is None:
            write_rows(self.backend, workspace, line)
        else:
            self.ops_log.add(workspace, line)

    def deliver_group(self, group: list[AcceptedBatch]) -> None:
        first = group[0]
        workspace = self.catalog.workspaces.get(first.workspace_id)
        datasource = self.catalog.datasources.get(first.datasource_id)
        if workspace is None or datasource is None:
            log.warning(
                "discarding %d rows of %d requests: data source %s no longer exists",
                sum(b.successful_rows + b.quarantined_rows for b in group),
                len(group),
                first.datasource_id,
            )
            return
        started = time.monotonic()
        try:
            landing = [b for b in group if b.successful_rows]
            if landing:
                rows = b"".join(b.rows for b in landing)
                table = table_ref(workspace, datasource.name)
                _insert(self.backend, table, rows, first.columns, landing_token(landing))
            self.insert_quarantine(group)
        except BackendError as exc:
            self.log_flush(workspace, datasource, 0, 0, started, exc.message)
            self.failed(workspace, datasource, group, exc)
            return
        rows_ok, quarantined = sum(b.successful_rows for b in group), sum(b.quarantined_rows for b in group)
        self.log_flush(workspace, datasource, rows_ok, quarantined, started, None)
        self.delivery.rows += rows_ok
        self.delivery.quarantined += quarantined

    def insert_quarantine(self, group: list[AcceptedBatch]) -> None:
        for batch in group:
            if batch.quarantined_rows:
                insert_quarantine(self.backend, self.catalog, batch)

    def failed(
        self, workspace: Workspace, datasource: DataSource, group: list[AcceptedBatch], exc: BackendError
    ) -> None:
        """A permanent failure: park the rows in the dead-letter area with the
        error (and the failed views, SPEC §8.4), never drop them silently."""
        failure = mv_failure(workspace, datasource, exc)
        failed = self.delivery.failed
        if failure is None:
            _dead_letter(self.dead_letter_dir, group, exc.message)
            failed.update((b.request_id, Failure("dead_letter", exc.message)) for b in group)
            return
        if failure.landing_committed:
            # E21: the landing rows are stored; only the views missed them. The
            # operator's repair re-runs just those views over the parked rows.
            with contextlib.suppress(BackendError):
                self.insert_quarantine(group)
            _dead_letter(self.dead_letter_dir, group, failure.detail, failure.views)
            failed.update((b.request_id, Failure("mv_partial", failure.detail)) for b in group)
            return
        # E22: nothing stored. Waiting clients are told so and will retry; rows
        # of requests already answered 202 are parked for an operator replay.
        parked = [b for b in group if b.request_id not in self.waiting]
        if parked:
            _dead_letter(self.dead_letter_dir, parked, failure.detail, failure.views)
        for batch in group:
            if batch.request_id in self.waiting:
                failed[batch.request_id] = Failure("mv_nothing_stored", failure.detail)
                if self.dedup is not None and batch.dedup_key:
                    self.dedup.forget(batch.dedup_key)
            else:
                failed[batch.request_id] = Failure("dead_letter", failure.detail)
