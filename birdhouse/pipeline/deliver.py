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


@dataclass
class Delivery:
    rows: int = 0
    quarantined: int = 0
    # request id → error, for requests whose rows went to the dead-letter area.
    failed: dict[str, str] = field(default_factory=dict)


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


def _dead_letter(directory: Path, group: list[AcceptedBatch], error: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{group[0].datasource_id}.msgpack"
    document = {"error": error, "batches": [msgspec.msgpack.encode(b) for b in group]}
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
) -> Delivery:
    delivery = Delivery()
    batches = [decode_batch(p) for p in payloads]
    for group in _groups(batches):
        first = group[0]
        workspace = catalog.workspaces.get(first.workspace_id)
        datasource = catalog.datasources.get(first.datasource_id)
        if workspace is None or datasource is None:
            log.warning(
                "discarding %d rows of %d requests: data source %s no longer exists",
                sum(b.successful_rows + b.quarantined_rows for b in group),
                len(group),
                first.datasource_id,
            )
            continue
        try:
            landing = [b for b in group if b.successful_rows]
            if landing:
                _insert(
                    backend,
                    table_ref(workspace, datasource.name),
                    b"".join(b.rows for b in landing),
                    first.columns,
                    landing_token(landing),
                )
            for batch in group:
                if batch.quarantined_rows:
                    insert_quarantine(backend, catalog, batch)
        except BackendError as exc:
            _dead_letter(dead_letter_dir, group, exc.message)
            for batch in group:
                delivery.failed[batch.request_id] = exc.message
            continue
        delivery.rows += sum(b.successful_rows for b in group)
        delivery.quarantined += sum(b.quarantined_rows for b in group)
    if dedup is not None:
        try:
            dedup.persist(batches)
        except BackendUnavailable as exc:
            raise Transient(exc.message) from exc
        except BackendError as exc:
            # The keys stay valid in memory; only a restart would forget them.
            log.error("could not record idempotency keys: %s", exc.message)
    return delivery
