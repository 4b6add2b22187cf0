"""`Wal`: the public object — recovery at open, appends, rotation, sealed segments.

One lock guards all state (shared with `birdhouse.wal.commit`, which decides
when records are durable). Appends write under it: a pwrite into the page
cache takes microseconds. Rotation and seal fdatasync the old segment while
holding it: they are rare, and it keeps the invariant that only the newest
segment can have a torn tail.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import suppress
from pathlib import Path
from types import TracebackType

from birdhouse.wal import segment
from birdhouse.wal.commit import Active, Commit
from birdhouse.wal.segment import HEADER_SIZE
from birdhouse.wal.types import FsyncMode, Ticket, WalError, WalFull, WalStats

GiB = 1 << 30
MiB = 1 << 20


class Wal:
    """The node's write-ahead log of opaque payloads. Thread-safe.

    `append` returning means the record is in the page cache, *not* that it is
    durable; only `sync` returning does (per the fsync mode). `sealed` lists
    only segments a reader may take; the active segment is never among them.
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync: FsyncMode = "always",
        interval_ms: int = 50,
        max_bytes: int = 10 * GiB,
        segment_max_bytes: int = 32 * MiB,
    ) -> None:
        if fsync not in ("always", "interval", "off"):
            raise ValueError(f"fsync must be 'always', 'interval' or 'off', got {fsync!r}")
        if interval_ms <= 0 or max_bytes <= 0 or segment_max_bytes <= HEADER_SIZE:
            raise ValueError("interval_ms, max_bytes and segment_max_bytes must be positive")
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._segment_max = segment_max_bytes
        self._lock = threading.Lock()
        # Held while the spare file is written; rotation skips the spare rather than wait.
        self._spare_lock = threading.Lock()
        self._spare_seq = 0
        self._c = Commit(self._lock, fsync, interval_ms / 1000)
        self._sealed: dict[int, int] = {}  # seq -> file size
        self._next_seq = 1
        self._total = self._records = self._bytes = 0
        self._lock_fd = -1
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock_directory(self._dir)
            self._recover()
        except OSError as exc:
            self._close_fds()
            raise WalError(f"cannot open WAL directory {self._dir}: {exc}") from exc
        except BaseException:
            self._close_fds()
            raise
        self._syncer: threading.Thread | None = None
        if fsync == "interval":
            self._syncer = threading.Thread(target=self._c.run_interval, name="birdhouse-wal-sync", daemon=True)
            self._syncer.start()

    def append(self, payload: bytes) -> Ticket:
        """Write one record (rotating first if the active segment is full).

        Raises `WalFull` (nothing written) past `max_bytes`, `WalError` on an
        I/O error and on every call after one until `reset_failure`.
        """
        record = segment.encode_record(payload)  # checksum outside the lock
        size = len(record)
        with self._lock:
            c = self._c
            while True:
                c.check_writable()
                act = c.active
                rotate = act.records > 0 and act.end + size > self._segment_max
                if self._total + size + (HEADER_SIZE if rotate else 0) > self._max_bytes:
                    raise WalFull(f"WAL at its disk budget ({self._total} of {self._max_bytes} bytes)")
                if not rotate:
                    break
                if c.syncing:  # a leader is syncing the fd that rotation would close
                    c.cond.wait()
                    continue
                self._rotate()
            act = c.active
            try:
                segment.write_all(act.fd, record, act.end)
            except OSError as exc:
                c.fail(exc)  # bytes of a partial write lie past act.end; reset_failure cuts them
                raise WalError(f"WAL write failed: {exc}") from exc
            was_clean = act.synced == act.end
            act.end += size
            act.records += 1
            self._total += size
            self._records += 1
            self._bytes += size
            return c.written(was_clean)

    def sync(self, ticket: Ticket) -> None:
        """Block until the record behind `ticket` is durable per the fsync mode.

        `always`: group commit; a waiter becomes the leader when no sync is
        running, and its fdatasync covers every record written before it began.
        `interval`: wait for a background sync that started after the record.
        `off`: return at once. Raises `WalError` if the record can no longer
        become durable (an I/O error came first); it was then never acknowledged.
        """
        if self._c.mode == "off":
            return
        with self._lock:
            self._c.wait(ticket)

    def append_sync(self, payload: bytes) -> Ticket:
        ticket = self.append(payload)
        self.sync(ticket)
        return ticket

    def seal(self) -> int | None:
        """Seal the active segment if it holds a record and return its seq; else None.

        The segment is fdatasync'd whole first (unless fsync=off), so readers
        only ever get durable, complete segments.
        """
        with self._lock:
            self._c.check_writable()
            self._c.wait_idle()
            self._c.check_writable()
            if self._c.active.records == 0:
                return None
            seq = self._c.active.seq
            self._rotate()
            return seq

    def prepare_next(self) -> None:
        """Make the next segment's file ahead, outside the WAL lock, so that the
        next rotation (`seal`, or an append into a full segment) only renames it.
        Best effort: on any error rotation creates the file itself, as before."""
        with self._lock:
            if self._c.closed or self._c.failure is not None or self._spare_seq == self._next_seq:
                return
            seq = self._next_seq
        with self._spare_lock:
            try:
                segment.prepare_spare(self._dir, seq, sync=self._c.mode != "off")
            except OSError:
                return
        with self._lock:
            self._spare_seq = seq
            if self._c.mode != "off":
                self._c.fsyncs += 1

    def sealed(self) -> list[int]:
        """Seqs of the sealed segments, ascending (log order)."""
        with self._lock:
            return sorted(self._sealed)

    def read(self, seq: int) -> list[bytes]:
        """The payloads of sealed segment `seq`, verified; `WalCorrupt` names a bad record."""
        with self._lock:
            if seq not in self._sealed:
                raise ValueError(f"WAL segment {seq} is not sealed")
        try:
            return segment.read_segment(self._path(seq), seq)
        except OSError as exc:
            raise WalError(f"cannot read WAL segment {seq}: {exc}") from exc

    def delete(self, seq: int) -> None:
        """Remove sealed segment `seq`: only once the backend acknowledged every record in it."""
        with self._lock:
            if seq not in self._sealed:
                raise ValueError(f"WAL segment {seq} is not sealed")
            size = self._sealed.pop(seq)
        try:
            self._path(seq).unlink(missing_ok=True)
        except OSError as exc:
            with self._lock:
                self._sealed[seq] = size
            raise WalError(f"cannot delete WAL segment {seq}: {exc}") from exc
        with self._lock:
            self._total -= size
        # No directory fsync: no durability claim rests on the unlink. Should a
        # crash undo it, the segment is replayed and its dedup tokens make that
        # a no-op (the next journal commit, at most seconds away, makes it
        # durable anyway). A newer segment is already on disk, so the highest
        # seq stays. The fsync cost milliseconds per wait=true flush: it waits
        # for the file system's whole journal, the engine's parts included.

    def reset_failure(self) -> None:
        """Leave the failed state if the disk works again; `WalError` while it does not.

        Records of the failed segment past its last successful sync were never
        acknowledged: they are cut off (never re-synced as if durable), the
        segment is sealed with what was durable, and appends go to a new one.
        """
        with self._lock:
            c = self._c
            if c.closed:
                raise WalError("WAL is closed")
            c.wait_idle()
            if c.failure is None:
                return
            old = c.active
            try:
                os.ftruncate(old.fd, old.synced)
                if c.mode != "off":
                    os.fdatasync(old.fd)
            except OSError as exc:
                raise WalError(f"WAL disk still failing: {exc}") from exc
            self._total -= old.end - old.synced
            c.cut(old)
            c.activate(self._create_active())  # the re-check: a new file + fsyncs must work
            _close_quietly(old.fd)
            if old.synced > HEADER_SIZE:
                self._sealed[old.seq] = old.synced
            else:  # only its header left; if the unlink fails, recovery drops it later
                try:
                    self._path(old.seq).unlink()
                    self._total -= HEADER_SIZE
                except OSError:
                    self._sealed[old.seq] = old.synced
            c.failure = None
            c.cond.notify_all()

    @property
    def total_bytes(self) -> int:
        """Bytes of all segment files: what `max_bytes` bounds."""
        with self._lock:
            return self._total

    @property
    def failed(self) -> bool:
        with self._lock:
            return self._c.failure is not None

    def stats(self) -> WalStats:
        with self._lock:
            return WalStats(
                fsyncs=self._c.fsyncs,
                records=self._records,
                bytes_written=self._bytes,
                segments=len(self._sealed) + 1,
                total_bytes=self._total,
                failed=self._c.failure is not None,
            )

    def close(self) -> None:
        """Sync what was written (unless failed or fsync=off) and release the directory."""
        error: WalError | None = None
        with self._lock:
            c = self._c
            if c.closed:
                return
            c.wait_idle()
            if c.failure is None:
                try:
                    c.sync_now()
                except WalError as exc:
                    error = exc
            c.closed = True
            self._close_fds()
            c.cond.notify_all()
            c.work.notify_all()
        if self._syncer is not None:
            self._syncer.join()
        if error is not None:
            raise error

    def __enter__(self) -> Wal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals: callers hold self._lock ---------------------------------

    def _recover(self) -> None:
        """Every segment found becomes sealed (the newest after cutting its torn tail)."""
        seqs = segment.list_segments(self._dir)
        empty: list[int] = []
        for seq in seqs:
            kept = segment.recover(self._path(seq), seq, newest=seq == seqs[-1], sync=self._c.mode != "off")
            if kept is None:
                empty.append(seq)
            else:
                self._sealed[seq] = kept
                self._total += kept
        # The new active segment is on disk before empty ones go, so the
        # highest seq ever used stays on disk: seqs are never reused, and the
        # pipeline may derive dedup tokens from them.
        self._next_seq = seqs[-1] + 1 if seqs else 1
        self._c.activate(self._create_active())
        for seq in empty:
            self._path(seq).unlink()
        if empty:
            segment.fsync_dir(self._dir)

    def _create_active(self) -> Active:
        seq = self._next_seq
        self._next_seq += 1  # also on failure: a half-made file must not block the next try
        sync = self._c.mode != "off"
        # A spare still being written is left alone: the slow path is no worse than before.
        spare = self._spare_lock.acquire(blocking=False)
        try:
            fd, renamed = segment.create_segment(self._dir, seq, sync=sync, use_spare=spare)
        except OSError as exc:
            self._c.fail(exc)
            raise WalError(f"cannot create WAL segment {seq}: {exc}") from exc
        finally:
            if spare:
                self._spare_lock.release()
        if sync and not renamed:  # a spare's header sync was counted when it was written
            self._c.fsyncs += 1
        self._total += HEADER_SIZE
        return Active(seq, fd)

    def _rotate(self) -> None:
        """Seal the active segment and start the next. Needs `wait_idle` first."""
        old = self._c.active
        self._c.sync_now()
        self._c.activate(self._create_active())
        _close_quietly(old.fd)
        self._sealed[old.seq] = old.end

    def _path(self, seq: int) -> Path:
        return self._dir / segment.segment_name(seq)

    def _close_fds(self) -> None:
        act = self._c.active
        if act.fd >= 0:
            _close_quietly(act.fd)
            act.fd = -1
        if self._lock_fd >= 0:
            _close_quietly(self._lock_fd)  # releases the flock
            self._lock_fd = -1


def _lock_directory(directory: Path) -> int:
    """flock `<dir>/LOCK`: two processes appending to one WAL would interleave records."""
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise WalError(f"WAL directory {directory} is in use by another process") from exc
    return fd


def _close_quietly(fd: int) -> None:
    # After a successful fdatasync a close error cannot lose data; after a
    # failed one the segment is being cut anyway. Nothing useful to do.
    with suppress(OSError):
        os.close(fd)
