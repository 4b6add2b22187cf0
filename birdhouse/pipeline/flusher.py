"""The flusher: seals WAL segments and delivers them, one task per node.

Triggers (SPEC §8.2): the oldest pending row is older than
``flush.interval_ms``; pending rows or bytes reach ``flush.max_rows`` /
``flush.max_bytes``; a ``wait=true`` request asks. Waiters share flushes:
the flush starts once as many waiters have arrived as joined the previous
one, or after ``flush.wait_coalesce_ms`` at most. A lone waiter on an idle
node is flushed at once; N clients in a loop are flushed N at a time, without
a fixed delay per round. There is no timer thread and no polling: the task
sleeps on an event with a deadline.

Segments are delivered strictly in order and deleted only after delivery
(DESIGN invariant 2). A transient backend failure keeps the segment and
retries with exponential backoff, indefinitely; waiting requests then time
out into a 202 (their rows are durable), never a false 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from birdhouse.backends import Backend
from birdhouse.catalog.catalog import Catalog
from birdhouse.catalog.opslog import OpsLogBuffer
from birdhouse.config import FlushSettings
from birdhouse.metrics import Metrics
from birdhouse.pipeline.dedup import DedupIndex
from birdhouse.pipeline.deliver import Delivery, Failure, Transient, deliver_segment
from birdhouse.wal import Ticket, Wal, WalCorrupt, WalError

log = logging.getLogger("birdhouse.flush")

# Flush rows reach tinybird.datasources_ops_log this often: a row of its own per
# flush cost as much as the landing insert, on the path of wait=true requests.
OPS_LOG_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Outcome:
    """How a waited-for request ended: committed, or a Failure (deliver.py)."""

    committed: bool
    failure: Failure | None = None


class Flusher:
    def __init__(
        self,
        wal: Wal,
        backend: Backend,
        catalog: Catalog,
        settings: FlushSettings,
        dead_letter_dir: Path,
        on_delivery: Callable[[Delivery], None] | None = None,
        dedup: DedupIndex | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.dedup = dedup
        self.metrics = metrics or Metrics()
        self.wal = wal
        self.backend = backend
        self.catalog = catalog
        self.settings = settings
        self.dead_letter_dir = dead_letter_dir
        self.on_delivery = on_delivery
        self._pending_rows = 0
        self._pending_bytes = 0
        self._oldest: float | None = None
        # Every segment with seq <= this has been delivered. Segments are
        # delivered in order and seqs are never reused, so a ticket in segment
        # S is delivered exactly when this reaches S.
        self.flushed_through = 0
        # The backend acknowledged every segment with seq <= this; its WAL file
        # may not be deleted yet. wait=true answers from here, not after the delete.
        self.delivered_through = 0
        self._seq_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: dict[str, Failure] = {}
        # Request ids with a wait=true client right now (see deliver_segment).
        self._waiting: set[str] = set()
        self._kick: asyncio.Event | None = None
        # wait=true arrivals ever / of those, already in a flush / in the last flush.
        self._arrivals = 0
        self._arrivals_flushed = 0
        self._last_waiters = 0
        self._arrived: asyncio.Event | None = None
        self._ops_log = OpsLogBuffer()
        self._progress: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._ops_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._abandoned = False
        self._flush_requested = False
        self.backend_down_since: float | None = None
        self.flushes = 0
        # Loop iterations begun / completed successfully: lets drain() wait
        # for a flush that started after everything before it was accepted.
        self._begun = 0
        self._completed = 0
        # Segments left by a previous run must be delivered before /v0/health
        # says ready (recovery before readiness).
        self.ready = not wal.sealed()

    # ---------------------------------------------------------------- API

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        self._arrived = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task = asyncio.create_task(self._run(), name="birdhouse-flusher")
        self._ops_task = asyncio.create_task(self._write_ops_log(), name="birdhouse-ops-log")
        if self.wal.sealed():
            self.kick()  # replay what a previous run left behind

    def note(self, rows: int, nbytes: int) -> None:
        """Account for an accepted request (called on the event loop)."""
        self._pending_rows += rows
        self._pending_bytes += nbytes
        if self._pending_rows >= self.settings.max_rows or self._pending_bytes >= self.settings.max_bytes:
            self.kick()
        elif self._oldest is None:
            # The first pending row starts the age timer: wake the loop so it
            # sleeps until that deadline instead of indefinitely.
            self._oldest = time.monotonic()
            if self._kick is not None:
                self._kick.set()

    def kick(self) -> None:
        """Ask for a flush now."""
        self._flush_requested = True
        if self._kick is not None:
            self._kick.set()

    def backend_down_for(self) -> float:
        return 0.0 if self.backend_down_since is None else time.monotonic() - self.backend_down_since

    async def wait_delivered(self, ticket: Ticket, request_id: str, timeout_s: float) -> Outcome | None:
        """Ask for a prompt flush and wait until the request's segment was
        delivered. None when the timeout elapsed first (rows stay durable)."""
        assert self._progress is not None
        assert self._arrived is not None
        self._wait_requested = True
        self._waiting.add(request_id)
        self._arrivals += 1
        if self._arrivals - self._arrivals_flushed >= self._last_waiters:
            self._arrived.set()
        self.kick()
        try:
            if self.delivered_through < ticket.seq:
                # One future per waiter, resolved by the flusher thread once its segment is acknowledged:
                # cheaper than waking every waiter on a condition after each flush.
                delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._seq_waiters.append((ticket.seq, delivered))
                # The flusher thread may have acknowledged the segment between the check and the append.
                if self.delivered_through >= ticket.seq:
                    self._release()
                try:
                    await asyncio.wait_for(delivered, timeout_s)
                except TimeoutError:
                    return None
        finally:
            self._waiting.discard(request_id)
        failure = self._failed.pop(request_id, None)
        return Outcome(committed=failure is None, failure=failure)

    async def drain(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything accepted before this call. False on timeout."""
        assert self._progress is not None
        target = self._begun + 1
        self.kick()
        deadline = time.monotonic() + timeout_s
        async with self._progress:
            while self._completed < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._progress.wait(), remaining)
                except TimeoutError:
                    return False
        return True

    async def stop(self, grace_s: float) -> None:
        """Deliver what is pending for up to ``grace_s``; the rest stays in the WAL."""
        self._stopping = True
        self.kick()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except TimeoutError:
            log.warning("shutdown grace elapsed; undelivered segments stay in the WAL for the next start")
            # A delivery already running in a worker thread stops at the next
            # segment boundary; its segment stays and is replayed next start.
            self._abandoned = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ops_task is not None:
            self._ops_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ops_task
        if self._ops_log:
            await run_in_threadpool(self._ops_log.write, self.backend)

    # --------------------------------------------------------------- loop

    _wait_requested = False

    def _deadline(self) -> float | None:
        if self._oldest is None:
            return None
        return self._oldest + self.settings.interval_ms / 1000 - time.monotonic()

    async def _run(self) -> None:
        assert self._kick is not None
        backoff = self.settings.retry_initial_ms / 1000
        while True:
            await self._sleep_until_due(backoff)
            self._flush_requested = False
            self._begun += 1
            if self._wait_requested and not self._stopping:
                self._wait_requested = False
                await self._coalesce()
            self._last_waiters = self._arrivals - self._arrivals_flushed
            self._arrivals_flushed = self._arrivals
            self._pending_rows = self._pending_bytes = 0
            self._oldest = None
            try:
                await run_in_threadpool(self._flush_all)
            except (Transient, WalError) as exc:
                self.metrics.backend_errors.inc(1, "transient" if isinstance(exc, Transient) else "wal")
                if isinstance(exc, Transient) and self.backend_down_since is None:
                    self.backend_down_since = time.monotonic()
                log.warning("flush failed, retrying in %.1fs: %s", backoff, exc)
                if self._stopping:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.retry_max_ms / 1000)
                self.kick()
                continue
            finally:
                await self._notify()
            self.backend_down_since = None
            self.ready = True
            self._completed = self._begun
            await self._notify()
            backoff = self.settings.retry_initial_ms / 1000
            if self._stopping:
                return

    async def _write_ops_log(self) -> None:
        """The ops log rows of flushes, once a second: one insert per workspace,
        off the path of the requests waiting for those flushes."""
        while True:
            await asyncio.sleep(OPS_LOG_INTERVAL_S)
            if self._ops_log:
                await run_in_threadpool(self._ops_log.write, self.backend)

    async def _coalesce(self) -> None:
        """Give waiting requests' peers a moment to join the flush: until as many
        waiters arrived as joined the last flush, ``wait_coalesce_ms`` at most."""
        assert self._arrived is not None
        if self._arrivals - self._arrivals_flushed >= self._last_waiters:
            return
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), self.settings.wait_coalesce_ms / 1000)

    async def _sleep_until_due(self, backoff: float) -> None:
        """Sleep until a flush is asked for or the oldest pending row is
        ``flush.interval_ms`` old; a wake-up that only re-arms the timer
        (the first row after a flush) goes back to sleep."""
        assert self._kick is not None
        while not (self._stopping or self._flush_requested):
            timeout = self._deadline()
            if self.wal.failed:
                timeout = backoff  # keep probing the disk until it takes writes again
            if timeout is not None and timeout <= 0:
                return
            self._kick.clear()
            try:
                await asyncio.wait_for(self._kick.wait(), timeout)
            except TimeoutError:
                return

    def _release(self) -> None:
        """On the loop: answer the waiters whose segment the backend acknowledged."""
        through, keep = self.delivered_through, []
        for seq, delivered in self._seq_waiters:
            if seq > through:
                keep.append((seq, delivered))
            elif not delivered.done():
                delivered.set_result(None)
        self._seq_waiters = keep

    def _delivered(self, seq: int) -> None:
        """From the flusher thread: segment ``seq`` is in the backend."""
        self.delivered_through = seq
        if self._loop is not None and self._seq_waiters:
            self._loop.call_soon_threadsafe(self._release)

    async def _notify(self) -> None:
        assert self._progress is not None
        async with self._progress:
            self._progress.notify_all()

    def _flush_all(self) -> None:
        """Seal the active segment and deliver every sealed one, in order."""
        if self.wal.failed:
            # After an I/O error the WAL takes nothing until the disk works
            # again; this raises WalError while it still does not.
            self.wal.reset_failure()
            log.warning("the WAL accepts writes again")
        # The segment that seal() starts is made here, outside the WAL lock that
        # appends on the event loop take (a no-op when the last flush made it).
        self.wal.prepare_next()
        self.wal.seal()
        for seq in self.wal.sealed():
            if self._abandoned:
                return
            try:
                payloads = self.wal.read(seq)
            except WalCorrupt as exc:
                self._set_aside(seq, exc)
                continue
            started = time.monotonic()
            delivery = deliver_segment(
                self.backend,
                self.catalog,
                payloads,
                self.dead_letter_dir,
                self.dedup,
                frozenset(self._waiting),
                self._ops_log,
            )
            self.metrics.flush_seconds.observe(time.monotonic() - started)
            self.metrics.flushed_rows.inc(delivery.rows, "ok")
            self.metrics.flushed_rows.inc(delivery.quarantined, "quarantined")
            if delivery.failed:
                self.metrics.backend_errors.inc(len(delivery.failed), "dead_letter")
            # Only waiting requests read their failure; the rest are logged already.
            self._failed.update((rid, f) for rid, f in delivery.failed.items() if rid in self._waiting)
            self._delivered(seq)
            self.wal.delete(seq)
            self.flushed_through = seq
            self.flushes += 1
            if self.on_delivery is not None:
                self.on_delivery(delivery)
        # Ready for the next seal, made while nobody waits on this flush.
        self.wal.prepare_next()

    def _set_aside(self, seq: int, exc: WalCorrupt) -> None:
        """A segment that fails its checks is copied to the dead-letter area
        for an operator, never skipped silently, and never blocks the rest."""
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        target = self.dead_letter_dir / f"corrupt-{exc.path.name}"
        shutil.copyfile(exc.path, target)
        log.error("%s; copied to %s", exc, target)
        self._delivered(seq)
        self.wal.delete(seq)
        self.flushed_through = seq
