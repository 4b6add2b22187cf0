"""When records become durable: the active segment, group commit, the failure state.

`Commit` shares one lock with `Wal`; every method here expects the caller to
hold it. fdatasync on the group-commit path runs with the lock *released*, so
appenders keep writing into the page cache while a leader syncs; nothing may
close, rotate or truncate the active fd while `syncing` is set (`wait_idle`).
"""

from __future__ import annotations

import os
import threading
import time

from birdhouse.wal.segment import HEADER_SIZE
from birdhouse.wal.types import FsyncMode, Ticket, WalError

_END = 1 << 63  # past any offset: the upper bound of a segment's lost range


class Active:
    """The segment open for appends."""

    __slots__ = ("end", "fd", "records", "seq", "synced")

    def __init__(self, seq: int, fd: int) -> None:
        self.seq = seq
        self.fd = fd
        self.end = HEADER_SIZE  # bytes written
        self.synced = HEADER_SIZE  # bytes known durable; the header is synced at creation
        self.records = 0


class Commit:
    def __init__(self, lock: threading.Lock, mode: FsyncMode, interval_s: float) -> None:
        self.lock = lock
        self.cond = threading.Condition(lock)  # durability waiters and leader hand-off
        self.work = threading.Condition(lock)  # wakes the fsync=interval syncer
        self.mode: FsyncMode = mode
        self.interval_s = interval_s
        self.active = Active(0, -1)
        self.durable = Ticket(0, 0)  # every record at or before this position is durable
        self.lost: list[tuple[Ticket, Ticket]] = []  # (lo, hi] ranges cut after I/O failures
        self.failure: OSError | None = None
        self.syncing = False  # a leader is in fdatasync with the lock released
        self.closed = False
        self.fsyncs = 0
        self.last_sync = 0.0

    def check_writable(self) -> None:
        if self.closed:
            raise WalError("WAL is closed")
        if self.failure is not None:
            raise WalError(f"WAL refuses appends after an I/O error ({self.failure}); reset_failure() first")

    def fail(self, exc: OSError) -> None:
        """Enter the failed state: no appends, no syncs, until `Wal.reset_failure`."""
        if self.failure is None:
            self.failure = exc
        self.cond.notify_all()

    def wait_idle(self) -> None:
        while self.syncing:
            self.cond.wait()

    def written(self, was_clean: bool) -> Ticket:
        """Book-keeping after a record was written to the active segment."""
        act = self.active
        ticket = Ticket(act.seq, act.end)
        if self.mode == "off":  # durable by definition: nothing will ever sync it
            act.synced = act.end
            self.durable = ticket
        elif self.mode == "interval" and was_clean:
            self.work.notify()
        return ticket

    def activate(self, act: Active) -> None:
        """Make a freshly created (header synced) segment the active one."""
        self.active = act
        self.durable = max(self.durable, Ticket(act.seq, act.synced))

    def wait(self, ticket: Ticket) -> None:
        """Block until `ticket` is durable; `WalError` once it never can be."""
        act = self.active
        if ticket > Ticket(act.seq, act.end):
            raise ValueError(f"{ticket} was not issued by this WAL")
        while True:
            if any(lo < ticket <= hi for lo, hi in self.lost):
                raise WalError("record lost: an I/O error came before it was synced")
            if ticket <= self.durable:
                return
            if self.failure is not None and not self.syncing:
                raise WalError(f"WAL sync failed: {self.failure}")
            if self.closed:
                raise WalError("WAL closed before the record was synced")
            if self.mode == "always" and not self.syncing and self.failure is None:
                self.lead()
            else:
                self.cond.wait()

    def lead(self) -> None:
        """One fdatasync for every record written so far, with the lock released.

        The target is taken before the sync begins: records appended meanwhile
        are not covered and wait for the next leader.
        """
        act = self.active
        target = act.end
        self.syncing = True
        self.last_sync = time.monotonic()
        error: OSError | None = None
        self.lock.release()
        try:
            os.fdatasync(act.fd)
        except OSError as exc:
            error = exc
        finally:
            self.lock.acquire()
            self.syncing = False
            self.fsyncs += 1
            self.cond.notify_all()
        if error is not None:
            # Never retried: after a failed fsync the kernel may have dropped
            # the dirty pages while marking them clean, so a second fsync could
            # "succeed" over lost data. Records past act.synced stay unacknowledged.
            self.fail(error)
            return
        act.synced = max(act.synced, target)
        self.durable = max(self.durable, Ticket(act.seq, target))

    def sync_now(self) -> None:
        """fdatasync the active segment holding the lock (rotation, close). Needs `wait_idle` first."""
        act = self.active
        if self.mode == "off" or act.synced >= act.end:
            return
        self.fsyncs += 1
        try:
            os.fdatasync(act.fd)
        except OSError as exc:
            self.fail(exc)
            raise WalError(f"WAL fsync failed: {exc}") from exc
        act.synced = act.end
        self.durable = max(self.durable, Ticket(act.seq, act.end))
        self.cond.notify_all()

    def cut(self, act: Active) -> None:
        """Forget `act`'s records past its last successful sync (after the file was truncated)."""
        lost = (Ticket(act.seq, act.synced), Ticket(act.seq, _END))
        if lost not in self.lost:
            self.lost.append(lost)
        act.end = act.synced

    def run_interval(self) -> None:
        """fsync=interval: sync at most every interval_s while there is unsynced data.

        Runs in its own thread and sleeps on a condition, never polls: it is
        woken by the first append into a clean segment and by close.
        """
        with self.lock:
            while not self.closed:
                act = self.active
                if self.failure is not None or self.syncing or act.synced >= act.end:
                    self.work.wait()
                    continue
                delay = self.last_sync + self.interval_s - time.monotonic()
                if delay > 0:
                    self.work.wait(delay)
                    continue
                self.lead()
