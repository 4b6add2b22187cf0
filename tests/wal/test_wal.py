"""The Wal's public surface: appends, seal/read/delete, rotation, budget, reopen, modes."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

import birdhouse.wal
from birdhouse.wal import Ticket, Wal, WalError, WalFull
from birdhouse.wal.segment import HEADER_SIZE, RECORD_OVERHEAD, list_segments
from tests.wal.helpers import seg_path, unacked


def test_public_surface() -> None:
    assert sorted(birdhouse.wal.__all__) == [
        "FsyncMode",
        "Ticket",
        "Wal",
        "WalCorrupt",
        "WalError",
        "WalFull",
        "WalStats",
    ]
    for name in birdhouse.wal.__all__:
        assert getattr(birdhouse.wal, name) is not None
    assert issubclass(WalFull, WalError)
    assert birdhouse.wal.__doc__ is not None
    assert "BHWAL1" in birdhouse.wal.__doc__


def test_tickets_order_like_the_log(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        a = wal.append(b"a")
        b = wal.append(b"bb")
        wal.seal()
        c = wal.append(b"c")
    assert a < b < c
    assert b == Ticket(1, HEADER_SIZE + 2 * RECORD_OVERHEAD + 3)
    assert c.seq == 2


def test_reopen_after_clean_close_keeps_everything(wal_dir: Path) -> None:
    with Wal(wal_dir, segment_max_bytes=100) as wal:
        synced = [wal.append_sync(b"s%d" % i) for i in range(10)]
        unsynced = [wal.append(b"u%d" % i) for i in range(10)]
        assert len(wal.sealed()) > 1  # rotated on the way
    assert synced[-1] < unsynced[0]
    with Wal(wal_dir, segment_max_bytes=100) as wal:
        assert unacked(wal) == [b"s%d" % i for i in range(10)] + [b"u%d" % i for i in range(10)]
        assert wal.sealed() == sorted(wal.sealed())
        assert wal.total_bytes == sum(os.path.getsize(p) for p in wal_dir.glob("*.wal"))


def test_seal_hands_out_only_sealed_segments(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        assert wal.seal() is None
        ticket = wal.append(b"x")
        active = ticket.seq
        assert wal.sealed() == []
        with pytest.raises(ValueError, match="not sealed"):
            wal.read(active)
        with pytest.raises(ValueError, match="not sealed"):
            wal.delete(active)
        assert wal.seal() == active
        assert wal.sealed() == [active]
        assert wal.read(active) == [b"x"]
        # seal() made the whole segment durable: the ticket is already covered.
        fsyncs = wal.stats().fsyncs
        wal.sync(ticket)
        assert wal.stats().fsyncs == fsyncs
        assert wal.seal() is None  # the new active segment is empty


def test_delete_removes_the_file_and_frees_budget(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        wal.append_sync(b"x" * 100)
        seq = wal.seal()
        assert seq is not None
        before = wal.total_bytes
        wal.delete(seq)
        assert not seg_path(wal_dir, seq).exists()
        assert wal.total_bytes == before - (HEADER_SIZE + RECORD_OVERHEAD + 100)
        assert wal.sealed() == []
        with pytest.raises(ValueError, match="not sealed"):
            wal.delete(seq)


def test_rotation_respects_segment_max_bytes(wal_dir: Path) -> None:
    limit = 200
    payloads = [bytes([i]) * (i % 50 + 1) for i in range(60)]
    big = b"B" * 500  # larger than a segment: gets a segment of its own
    with Wal(wal_dir, segment_max_bytes=limit) as wal:
        for p in [*payloads, big, b"tail"]:
            wal.append(p)
        wal.seal()
        assert unacked(wal) == [*payloads, big, b"tail"]
        sizes = {seq: seg_path(wal_dir, seq).stat().st_size for seq in wal.sealed()}
    assert len(sizes) > 5
    assert [s for s in sizes.values() if s > limit] == [HEADER_SIZE + RECORD_OVERHEAD + 500]


def test_seqs_are_never_reused(wal_dir: Path) -> None:
    seen: set[int] = set()
    for _ in range(3):
        with Wal(wal_dir) as wal:
            seen.add(wal.append_sync(b"x").seq)
            for seq in wal.sealed():
                wal.delete(seq)
            sealed = wal.seal()
            assert sealed is not None
            wal.delete(sealed)
    assert len(seen) == 3
    assert min(list_segments(wal_dir)) > max(seen)


def test_walfull_at_max_bytes_writes_nothing(wal_dir: Path) -> None:
    max_bytes = HEADER_SIZE + 5 * (RECORD_OVERHEAD + 10)
    with Wal(wal_dir, max_bytes=max_bytes) as wal:
        tickets = [wal.append_sync(b"%010d" % i) for i in range(5)]
        assert wal.total_bytes == max_bytes
        size = seg_path(wal_dir, tickets[0].seq).stat().st_size
        with pytest.raises(WalFull, match="budget"):
            wal.append(b"0123456789")
        with pytest.raises(WalFull):
            wal.append(b"y")  # even one byte
        assert seg_path(wal_dir, tickets[0].seq).stat().st_size == size
        assert wal.stats().records == 5
        assert not wal.failed  # backpressure, not a failure
        seq = wal.seal()
        assert seq is not None
        assert wal.read(seq) == [b"%010d" % i for i in range(5)]
        wal.delete(seq)
        wal.append_sync(b"0123456789")  # room again after the flush
        assert wal.total_bytes == HEADER_SIZE + RECORD_OVERHEAD + 10


def test_walfull_counts_the_header_of_a_rotation(wal_dir: Path) -> None:
    with Wal(wal_dir, max_bytes=2 * HEADER_SIZE + 2 * (RECORD_OVERHEAD + 4) - 1, segment_max_bytes=30) as wal:
        wal.append(b"aaaa")
        with pytest.raises(WalFull):
            wal.append(b"bbbb")  # would need a new segment header too
        assert wal.sealed() == []


def test_directory_is_locked_while_open(wal_dir: Path) -> None:
    with Wal(wal_dir), pytest.raises(WalError, match="in use"):
        Wal(wal_dir)
    with Wal(wal_dir) as wal:
        assert not wal.failed


def test_closed_wal_refuses_appends(wal_dir: Path) -> None:
    wal = Wal(wal_dir)
    ticket = wal.append(b"x")
    wal.close()
    wal.close()  # idempotent
    with pytest.raises(WalError, match="closed"):
        wal.append(b"y")
    wal.sync(ticket)  # close synced it, so it is durable


def test_invalid_arguments(wal_dir: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        Wal(wal_dir, fsync="sometimes")  # type: ignore[arg-type]
    with Wal(wal_dir) as wal:
        with pytest.raises(ValueError, match="payload"):
            wal.append(b"")
        with pytest.raises(ValueError, match="not issued"):
            wal.sync(Ticket(99, 0))


class SyncLog:
    """Records every fdatasync with its start and end time."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []
        self._real = os.fdatasync

    def __call__(self, fd: int) -> None:
        start = time.monotonic()
        self._real(fd)
        self.calls.append((start, time.monotonic()))


def test_interval_sync_waits_for_a_background_sync_started_after_the_append(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog()
    monkeypatch.setattr(os, "fdatasync", log)
    with Wal(wal_dir, fsync="interval", interval_ms=30) as wal:
        time.sleep(0.05)
        tickets: list[Ticket] = []
        appended: list[float] = []
        for i in range(50):
            appended.append(time.monotonic())
            tickets.append(wal.append(b"r%d" % i))
        wal.sync(tickets[-1])
        returned = time.monotonic()
        assert any(start > appended[-1] and end <= returned for start, end in log.calls)
        # Every sync is at least interval_ms after the previous one started.
        starts = [start for start, _ in log.calls[1:]]  # [0] is the header of segment 1
        assert all(b - a >= 0.02 for a, b in itertools.pairwise(starts))  # 30 ms less jitter
        assert len(starts) <= (returned - appended[0]) / 0.03 + 1  # not one per record
        assert wal.stats().fsyncs == len(log.calls)
        # Nothing more to sync: the background thread sleeps instead of syncing again.
        count = len(log.calls)
        time.sleep(0.1)
        assert len(log.calls) == count


def test_interval_syncs_appends_nobody_waits_for(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = SyncLog()
    monkeypatch.setattr(os, "fdatasync", log)
    with Wal(wal_dir, fsync="interval", interval_ms=5) as wal:
        before = len(log.calls)
        wal.append(b"unwatched")
        deadline = time.monotonic() + 5
        while len(log.calls) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(log.calls) == before + 1


def test_interval_sync_from_many_threads(wal_dir: Path) -> None:
    with Wal(wal_dir, fsync="interval", interval_ms=2) as wal:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    wal.append_sync(b"%d-%d" % (n, i))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert wal.seal() is not None
        assert len(unacked(wal)) == 160


def test_off_mode_never_fsyncs_data(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = SyncLog()
    monkeypatch.setattr(os, "fdatasync", log)
    with Wal(wal_dir, fsync="off") as wal:
        for i in range(20):
            wal.append_sync(b"%d" % i)
        seq = wal.seal()
        assert seq is not None
        assert wal.read(seq) == [b"%d" % i for i in range(20)]
        assert wal.stats().fsyncs == 0
    assert log.calls == []
