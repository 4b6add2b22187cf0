"""The WAL against a list model, with crashes that lose unsynced page cache.

A "crash" closes the WAL, then cuts the newest (active) segment file at a
random offset at or past its last synced record — the part of a file that
may not have reached the disk — optionally followed by garbage, and reopens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from birdhouse.wal import FsyncMode, Ticket, Wal
from birdhouse.wal.segment import HEADER_SIZE
from tests.wal.helpers import newest, unacked

bodies = st.binary(max_size=40)


class WalMachine(RuleBasedStateMachine):
    mode: FsyncMode = "always"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="birdhouse-wal-"))
        self.wal = self.open()
        self.live: list[bytes] = []  # appended, not acked, not lost; in log order
        self.synced: set[bytes] = set()  # sync() returned for these
        self.acked: set[bytes] = set()  # read + deleted (the backend has them)
        self.tickets: dict[bytes, Ticket] = {}
        self.count = 0

    def open(self) -> Wal:
        # Tiny segments so rotation happens inside appends, not only on seal().
        return Wal(self.dir, fsync=self.mode, interval_ms=1, segment_max_bytes=160)

    def payload(self, body: bytes) -> bytes:
        self.count += 1  # unique payloads make order and duplicates checkable
        return b"%06d|" % self.count + body

    @rule(body=bodies)
    def append_and_sync(self, body: bytes) -> None:
        p = self.payload(body)
        self.tickets[p] = self.wal.append_sync(p)
        self.live.append(p)
        self.synced.add(p)

    @rule(body=bodies)
    def append_without_sync(self, body: bytes) -> None:
        p = self.payload(body)
        self.tickets[p] = self.wal.append(p)
        self.live.append(p)

    @rule()
    def seal(self) -> None:
        seq = self.wal.seal()
        if seq is not None:
            assert self.wal.sealed()[-1] == seq

    @precondition(lambda self: bool(self.wal.sealed()))
    @rule()
    def ack_oldest(self) -> None:
        seq = self.wal.sealed()[0]
        payloads = self.wal.read(seq)
        assert payloads  # sealed segments are never empty
        assert payloads == self.live[: len(payloads)]
        self.wal.delete(seq)
        del self.live[: len(payloads)]
        self.acked.update(payloads)

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        self.wal.close()
        path = newest(self.dir)
        seq = int(path.name.split(".")[0])
        size = path.stat().st_size
        # The header is fdatasync'd when a segment is created, so it is "synced" too.
        floor = max([HEADER_SIZE] + [t.offset for p, t in self.tickets.items() if t.seq == seq and p in self.synced])
        cut = data.draw(st.integers(min_value=min(floor, size), max_value=size), label="cut")
        garbage = data.draw(st.binary(max_size=30), label="garbage")
        os.truncate(path, cut)
        with path.open("ab") as f:
            f.write(garbage)
        self.reopen()

    @rule()
    def clean_reopen(self) -> None:
        self.wal.close()
        before = list(self.live)
        self.reopen()
        assert self.live == before  # a clean close loses nothing, synced or not

    def reopen(self) -> None:
        self.wal = self.open()
        recovered = unacked(self.wal)
        assert not self.acked.intersection(recovered)  # nothing acked ever comes back
        # Unsynced records may be lost, but only as a suffix: never reordered or corrupted.
        assert recovered == self.live[: len(recovered)]
        lost = self.live[len(recovered) :]
        assert not self.synced.intersection(lost), "a synced record was lost"
        self.live = recovered

    @invariant()
    def sealed_segments_hold_a_prefix_of_the_log(self) -> None:
        got = unacked(self.wal)
        assert got == self.live[: len(got)]

    def teardown(self) -> None:
        self.wal.close()
        shutil.rmtree(self.dir)


class IntervalWalMachine(WalMachine):
    mode: FsyncMode = "interval"


TestWalAlways = WalMachine.TestCase
TestWalAlways.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestWalInterval = IntervalWalMachine.TestCase
TestWalInterval.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
