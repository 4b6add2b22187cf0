"""Group commit: concurrent syncs share fdatasync calls, and a sync covers only
records written before it began."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from birdhouse.wal import Ticket, Wal
from tests.wal.helpers import unacked

THREADS = 32
PER_THREAD = 200


def run_threads(wal: Wal) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                wal.append_sync(b"%02d:%04d" % (n, i))
        except BaseException as exc:  # pragma: no cover - asserted empty below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_syncs_share_fdatasyncs(wal_dir: Path) -> None:
    with Wal(wal_dir, fsync="always") as wal:
        before = wal.stats().fsyncs  # the first segment's header
        assert run_threads(wal) == []
        stats = wal.stats()
        records = THREADS * PER_THREAD
        fsyncs = stats.fsyncs - before
        print(f"group commit: {records} records, {fsyncs} fdatasyncs")  # shown with -s
        assert stats.records == records
        assert 0 < fsyncs < records / 2
        assert wal.seal() is not None
        payloads = unacked(wal)
    assert len(payloads) == records
    assert len(set(payloads)) == records
    for n in range(THREADS):  # each thread's records in its own order
        mine = [p for p in payloads if p.startswith(b"%02d:" % n)]
        assert mine == [b"%02d:%04d" % (n, i) for i in range(PER_THREAD)]


def test_a_sync_covers_records_written_before_it_began_only(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a leader's fdatasync runs, later records wait for the next one."""
    real = os.fdatasync
    in_sync = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def gated(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            in_sync.set()
            assert release.wait(10)
        real(fd)

    with Wal(wal_dir) as wal:
        first = wal.append(b"first")
        monkeypatch.setattr(os, "fdatasync", gated)
        done: list[Ticket] = []

        def sync(ticket: Ticket) -> threading.Thread:
            def run() -> None:
                wal.sync(ticket)
                done.append(ticket)

            thread = threading.Thread(target=run)
            thread.start()
            return thread

        leader = sync(first)
        assert in_sync.wait(10)
        late = [wal.append(b"late %d" % i) for i in range(10)]
        followers = [sync(t) for t in late]
        time.sleep(0.05)
        assert done == []  # nobody returns before the (blocked) sync completes
        release.set()
        leader.join()
        for f in followers:
            f.join()
        assert sorted(done) == [first, *late]
        # One sync for `first`, one shared by all ten late records.
        assert len(calls) == 2
