"""The next segment's file made ahead (`Wal.prepare_next`): rotation renames it instead of creating a file
under the WAL lock, and nothing about the log changes when it is stale, half-made, busy or left by a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from birdhouse.wal import Wal
from birdhouse.wal import segment as segment_module
from birdhouse.wal.segment import HEADER_SIZE, SPARE_NAME, encode_header, list_segments
from tests.wal.helpers import seg_path, unacked


def _active_seq(wal: Wal) -> int:
    return max(list_segments(wal._dir))


def test_seal_renames_the_prepared_file_into_the_next_segment(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        ticket = wal.append_sync(b"first")
        wal.prepare_next()
        spare = wal_dir / SPARE_NAME
        assert spare.read_bytes() == encode_header(ticket.seq + 1)
        inode = spare.stat().st_ino
        fsyncs = wal.stats().fsyncs
        assert wal.seal() == ticket.seq
        assert not spare.exists()
        nxt = seg_path(wal_dir, ticket.seq + 1)
        assert nxt.stat().st_ino == inode  # the same file, renamed: no new inode under the lock
        assert wal.stats().fsyncs == fsyncs  # its header was synced when it was written
        second = wal.append_sync(b"second")
        assert second.seq == ticket.seq + 1
        wal.seal()
        assert unacked(wal) == [b"first", b"second"]
    with Wal(wal_dir) as reopened:
        assert unacked(reopened) == [b"first", b"second"]


def test_prepare_is_idempotent_and_a_size_rotation_uses_it_too(wal_dir: Path) -> None:
    with Wal(wal_dir, segment_max_bytes=HEADER_SIZE + 64) as wal:
        wal.append(b"a" * 40)
        wal.prepare_next()
        inode = (wal_dir / SPARE_NAME).stat().st_ino
        fsyncs = wal.stats().fsyncs
        wal.prepare_next()  # already made for this seq: nothing written, nothing synced
        assert wal.stats().fsyncs == fsyncs and (wal_dir / SPARE_NAME).stat().st_ino == inode
        ticket = wal.append(b"b" * 40)  # does not fit: rotates into the spare
        assert seg_path(wal_dir, ticket.seq).stat().st_ino == inode
        assert not (wal_dir / SPARE_NAME).exists()


def test_a_stale_or_half_made_spare_is_ignored(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        first = wal.append_sync(b"x")
        # Made for a seq that is no longer next, then one with a torn header: both ignored.
        for content in (encode_header(first.seq + 7), encode_header(first.seq + 1)[:5]):
            (wal_dir / SPARE_NAME).write_bytes(content)
            sealed = wal.seal()
            assert sealed is not None
            assert (wal_dir / SPARE_NAME).exists()  # left alone, overwritten by the next prepare
            assert seg_path(wal_dir, _active_seq(wal)).read_bytes() == encode_header(_active_seq(wal))
            wal.append_sync(b"x")
        wal.prepare_next()
        assert (wal_dir / SPARE_NAME).read_bytes() == encode_header(_active_seq(wal) + 1)


def test_rotation_does_not_wait_for_a_spare_being_written(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        ticket = wal.append_sync(b"x")
        wal.prepare_next()
        inode = (wal_dir / SPARE_NAME).stat().st_ino
        with wal._spare_lock:  # as if prepare_next were writing it right now
            assert wal.seal() == ticket.seq
        assert seg_path(wal_dir, ticket.seq + 1).stat().st_ino != inode
        assert (wal_dir / SPARE_NAME).exists()


def test_a_spare_left_by_a_crash_is_not_a_segment(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        wal.append_sync(b"kept")
        wal.prepare_next()
        spare_seq = _active_seq(wal) + 1
    # A restart: the old active segment is sealed, a new one starts. If the spare fits that seq it is used,
    # and either way the log holds exactly what was written.
    with Wal(wal_dir) as wal:
        assert unacked(wal) == [b"kept"]
        assert _active_seq(wal) == spare_seq
        assert not (wal_dir / SPARE_NAME).exists()
    (wal_dir / SPARE_NAME).write_bytes(b"\0" * HEADER_SIZE)  # zero-filled, as after a crash mid-write
    with Wal(wal_dir) as wal:
        assert unacked(wal) == [b"kept"]
        assert seg_path(wal_dir, _active_seq(wal)).read_bytes() == encode_header(_active_seq(wal))


def test_prepare_failures_leave_rotation_as_before(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with Wal(wal_dir) as wal:
        ticket = wal.append_sync(b"x")
        monkeypatch.setattr(segment_module, "prepare_spare", broken)
        wal.prepare_next()  # best effort: no exception
        assert wal.seal() == ticket.seq
        assert seg_path(wal_dir, ticket.seq + 1).exists()
        assert not wal.failed
