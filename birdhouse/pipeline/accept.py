"""The acceptance point (SPEC §1.4 step 11), shared by every ingest route.

:func:`accept` appends converted rows to the WAL (group commit), counts them,
arms the flusher and inserts the request's quarantine rows at once. It raises
:class:`Unavailable` — the one backpressure signal, which routes map to 503 —
when nothing may be accepted. Success means the rows survive a crash of this
process; it does not mean they are in the database yet.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from birdhouse.backends import BackendError
from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.ids import new_request_id
from birdhouse.pipeline.deliver import Transient, insert_quarantine
from birdhouse.pipeline.records import AcceptedBatch
from birdhouse.schema.convert import Converted
from birdhouse.wal import Ticket, WalError

if TYPE_CHECKING:
    from birdhouse.runtime import Runtime

log = logging.getLogger("birdhouse.accept")


class Unavailable(Exception):
    """Nothing was accepted; the client should retry later (503)."""


async def accept(
    rt: Runtime,
    workspace: Workspace,
    datasource: DataSource,
    converted: Converted,
    *,
    wire_size: int,
    dedup_key: str = "",
    request_id: str = "",
) -> tuple[Ticket, AcceptedBatch]:
    if not rt.accepting:
        raise Unavailable("shutting down")
    if rt.flusher.backend_down_for() > rt.settings.flush.backend_down_deadline_s:
        raise Unavailable("the database has been unavailable for too long")
    request_id = request_id or new_request_id()
    try:
        ticket, batch = await rt.ingestor.accept_async(workspace, datasource, converted, request_id, dedup_key)
    except WalError as exc:
        log.warning("WAL refused a batch for %s: %s", datasource.name, exc)
        rt.flusher.kick()  # it probes the disk and resets the WAL once writes work again
        raise Unavailable(str(exc)) from None
    # Accepted: from here on the client hears a 2xx (or E21/E22).
    labels = (workspace.name, datasource.name)
    rt.metrics.rows.inc(converted.successful_rows, *labels, "ok")
    rt.metrics.rows.inc(converted.quarantined_rows, *labels, "quarantined")
    rt.metrics.bytes_in.inc(wire_size, *labels)
    if dedup_key:
        rt.dedup.remember(batch, ticket.seq)
    rt.flusher.note(converted.successful_rows + converted.quarantined_rows, len(batch.rows) + len(batch.quarantine))
    if converted.quarantined_rows:
        # The tb CLI reads <ds>_quarantine right after the response (SPEC §8.2).
        try:
            await run_in_threadpool(insert_quarantine, rt.backend, rt.catalog, batch)
        except (BackendError, Transient) as exc:
            log.warning("early quarantine insert failed, the flush will retry: %s", exc)
    return ticket, batch
