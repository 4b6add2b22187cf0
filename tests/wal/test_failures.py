"""I/O error injection: no record is ever reported durable that was not, and
after an error appends are refused until `reset_failure` re-checks the disk."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from birdhouse.wal import Ticket, Wal, WalError
from tests.wal.helpers import unacked

_real_fdatasync = os.fdatasync
_real_pwrite = os.pwrite


def enospc(*args: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def reopened(wal_dir: Path) -> list[bytes]:
    with Wal(wal_dir) as wal:
        return unacked(wal)


def test_failed_fsync_is_never_reported_durable(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = Wal(wal_dir)
    durable = wal.append_sync(b"durable")
    doomed = wal.append(b"doomed")
    also_doomed = wal.append(b"also doomed")

    monkeypatch.setattr(os, "fdatasync", enospc)
    with pytest.raises(WalError, match="No space"):
        wal.sync(also_doomed)
    assert wal.failed
    with pytest.raises(WalError):
        wal.sync(doomed)  # written before the failed sync: covered by it, so lost too
    with pytest.raises(WalError, match="reset_failure"):
        wal.append(b"refused")
    with pytest.raises(WalError):
        wal.seal()
    with pytest.raises(WalError, match="still failing"):
        wal.reset_failure()  # the disk still fails: stay refused
    assert wal.failed

    monkeypatch.setattr(os, "fdatasync", _real_fdatasync)
    wal.sync(durable)  # synced before the failure: still durable
    wal.reset_failure()
    assert not wal.failed
    # Not retried as if it had succeeded: the records stay lost after reset.
    for ticket in (doomed, also_doomed):
        with pytest.raises(WalError, match="lost"):
            wal.sync(ticket)
    after = wal.append_sync(b"after reset")
    assert after.seq > durable.seq  # appends moved to a new segment
    assert unacked(wal) == [b"durable"]  # the failed segment, cut and sealed
    wal.close()
    assert reopened(wal_dir) == [b"durable", b"after reset"]


def test_failed_write_refuses_appends_until_reset(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Wal(wal_dir) as wal:
        wal.append_sync(b"one")
        unsynced = wal.append(b"two, written but never synced")
        monkeypatch.setattr(os, "pwrite", enospc)
        with pytest.raises(WalError, match="write failed"):
            wal.append(b"three")
        assert wal.stats().records == 2
        with pytest.raises(WalError):
            wal.append(b"four")
        with pytest.raises(WalError):
            wal.sync(unsynced)  # never synced before the failure: must not be reported durable
        monkeypatch.setattr(os, "pwrite", _real_pwrite)
        wal.reset_failure()
        wal.append_sync(b"five")
    assert reopened(wal_dir) == [b"one", b"five"]


def test_partial_write_leaves_no_garbage(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    def half_then_enospc(fd: int, data: memoryview, offset: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return _real_pwrite(fd, data[: len(data) // 2], offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    with Wal(wal_dir) as wal:
        wal.append_sync(b"before")
        monkeypatch.setattr(os, "pwrite", half_then_enospc)
        with pytest.raises(WalError):
            wal.append(b"x" * 1000)
        assert calls == 2  # the short write was continued, then failed
        monkeypatch.setattr(os, "pwrite", _real_pwrite)
        wal.reset_failure()
        wal.append_sync(b"after")
        assert unacked(wal) == [b"before"]  # half a record would make this raise WalCorrupt
    assert reopened(wal_dir) == [b"before", b"after"]


def test_failed_leader_fails_its_followers(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow_failing_fdatasync(fd: int) -> None:
        entered.set()
        assert release.wait(10)
        raise OSError(errno.EIO, "Input/output error")

    results: dict[str, BaseException | None] = {}

    def sync_in_thread(name: str, ticket: Ticket) -> threading.Thread:
        def run() -> None:
            try:
                wal.sync(ticket)
                results[name] = None
            except WalError as exc:
                results[name] = exc

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with Wal(wal_dir) as wal:
        leader_ticket = wal.append(b"leader")
        monkeypatch.setattr(os, "fdatasync", slow_failing_fdatasync)
        leader = sync_in_thread("leader", leader_ticket)
        assert entered.wait(10)
        # Written while the leader's fdatasync runs: waits for it (follower).
        follower = sync_in_thread("follower", wal.append(b"follower"))
        release.set()
        leader.join()
        follower.join()
        assert isinstance(results["leader"], WalError)
        assert isinstance(results["follower"], WalError)
        monkeypatch.setattr(os, "fdatasync", _real_fdatasync)
        wal.reset_failure()
    assert reopened(wal_dir) == []


def test_failed_segment_creation_on_rotation(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_new_segments(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if flags & os.O_CREAT and str(path).endswith(".wal"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode)

    with Wal(wal_dir, segment_max_bytes=64) as wal:
        first = wal.append_sync(b"a" * 30)
        monkeypatch.setattr(os, "open", no_new_segments)
        with pytest.raises(WalError, match="cannot create"):
            wal.append(b"b" * 30)  # needs a rotation
        assert wal.failed
        with pytest.raises(WalError):
            wal.reset_failure()  # creating a segment still fails
        monkeypatch.setattr(os, "open", real_open)
        wal.reset_failure()
        wal.sync(first)
        second = wal.append_sync(b"b" * 30)
        assert second.seq > first.seq
    assert reopened(wal_dir) == [b"a" * 30, b"b" * 30]


def test_reset_without_failure_is_a_no_op(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        ticket = wal.append_sync(b"x")
        wal.reset_failure()
        assert wal.append_sync(b"y").seq == ticket.seq
        assert wal.sealed() == []


def test_fsync_failure_at_close_is_reported(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = Wal(wal_dir)
    wal.append(b"unsynced")
    monkeypatch.setattr(os, "fdatasync", enospc)
    with pytest.raises(WalError, match="fsync failed"):
        wal.close()
    with pytest.raises(WalError, match="closed"):
        wal.append(b"x")
    monkeypatch.setattr(os, "fdatasync", _real_fdatasync)
    # The next open recovers whatever reached the file; the directory lock was released.
    assert reopened(wal_dir) in ([b"unsynced"], [])
