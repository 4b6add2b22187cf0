"""Record framing, strict reads of sealed segments, and recovery of the newest one."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from birdhouse.wal import Wal, WalCorrupt
from birdhouse.wal.segment import (
    HEADER_SIZE,
    MAGIC,
    RECORD_OVERHEAD,
    encode_header,
    encode_record,
    list_segments,
    parse_name,
    scan,
)
from tests.wal.helpers import seg_path, unacked

PAYLOADS = [b"first record", b"second record", b"third record"]


def write_three(wal_dir: Path) -> list[int]:
    """Three records in segment 1 (left as the newest file); returns their end offsets."""
    with Wal(wal_dir) as wal:
        return [wal.append_sync(p).offset for p in PAYLOADS]


@given(st.lists(st.binary(min_size=1, max_size=200), max_size=20))
def test_framing_round_trips(payloads: list[bytes]) -> None:
    data = encode_header(7) + b"".join(encode_record(p) for p in payloads)
    found = scan(data)
    assert found.error is None
    assert found.end == len(data)
    assert [data[a:b] for a, b in found.spans] == payloads


def test_record_layout_is_length_crc_payload_little_endian() -> None:
    record = encode_record(b"abc")
    assert record == struct.pack("<II", 3, zlib.crc32(b"abc")) + b"abc"
    assert encode_header(5) == MAGIC + bytes([1]) + (5).to_bytes(8, "little")
    assert len(encode_header(5)) == HEADER_SIZE


def test_empty_payload_is_refused() -> None:
    # A zero-filled tail would otherwise parse as valid empty records (crc32(b"") == 0).
    with pytest.raises(ValueError, match="payload"):
        encode_record(b"")
    assert scan(encode_header(1) + bytes(64)).spans == []


def test_segment_names() -> None:
    assert parse_name("00000000000000000042.wal") == 42
    assert parse_name("LOCK") is None
    assert parse_name("42.wal") is None
    assert parse_name("0000000000000000004x.wal") is None
    assert parse_name("00000000000000000042.wal.tmp") is None


def torn_record_header(data: bytes, ends: list[int]) -> bytes:
    return data[: ends[1] + RECORD_OVERHEAD - 3]


def torn_payload(data: bytes, ends: list[int]) -> bytes:
    return data[: ends[1] + RECORD_OVERHEAD + 4]


def flipped_byte(data: bytes, ends: list[int]) -> bytes:
    at = ends[1] + RECORD_OVERHEAD + 2  # inside the third payload
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def flipped_length(data: bytes, ends: list[int]) -> bytes:
    return data[: ends[1]] + struct.pack("<I", 1 << 30) + data[ends[1] + 4 :]


def zero_filled_tail(data: bytes, ends: list[int]) -> bytes:
    # File size reached disk, the data blocks did not.
    return data[: ends[1]] + bytes(len(data) - ends[1] + 100)


def garbage_tail(data: bytes, ends: list[int]) -> bytes:
    return data[: ends[1]] + b"\xde\xad\xbe\xef" * 9


@pytest.mark.parametrize(
    "damage",
    [torn_record_header, torn_payload, flipped_byte, flipped_length, zero_filled_tail, garbage_tail],
)
def test_recovery_cuts_the_newest_segment_at_its_last_good_record(
    wal_dir: Path, damage: Callable[[bytes, list[int]], bytes]
) -> None:
    ends = write_three(wal_dir)
    path = seg_path(wal_dir, 1)
    path.write_bytes(damage(path.read_bytes(), ends))

    with Wal(wal_dir) as wal:
        assert wal.sealed() == [1]
        assert wal.read(1) == PAYLOADS[:2]
        assert path.stat().st_size == ends[1]
        # Appends continue in a fresh segment after it.
        wal.append_sync(b"after")
        assert wal.seal() == 2
        assert unacked(wal) == [*PAYLOADS[:2], b"after"]


def test_recovery_keeps_an_intact_newest_segment_whole(wal_dir: Path) -> None:
    ends = write_three(wal_dir)
    with Wal(wal_dir) as wal:
        assert wal.read(1) == PAYLOADS
    assert seg_path(wal_dir, 1).stat().st_size == ends[-1]


@pytest.mark.parametrize("head", [b"", MAGIC[:3], bytes(HEADER_SIZE), bytes(HEADER_SIZE + 40)])
def test_torn_header_of_newest_segment_is_dropped_and_its_seq_not_reused(wal_dir: Path, head: bytes) -> None:
    write_three(wal_dir)  # segment 1 sealed on reopen, segment 2 active
    with Wal(wal_dir) as wal:
        assert wal.sealed() == [1]
    seg_path(wal_dir, 2).write_bytes(head)  # a crash while segment 2 was being created
    with Wal(wal_dir) as wal:
        assert wal.sealed() == [1]
        assert wal.read(1) == PAYLOADS
        assert wal.append_sync(b"x").seq == 3
    assert list_segments(wal_dir) == [1, 3]


def test_header_only_segments_are_dropped(wal_dir: Path) -> None:
    with Wal(wal_dir) as wal:
        assert wal.seal() is None  # nothing to seal
    with Wal(wal_dir) as wal:
        assert wal.sealed() == []
        assert wal.stats().segments == 1
    assert list_segments(wal_dir) == [2]


def test_corruption_inside_an_older_sealed_segment_raises_walcorrupt(wal_dir: Path) -> None:
    ends = write_three(wal_dir)
    with Wal(wal_dir) as wal:
        wal.append_sync(b"in segment 2")
    path = seg_path(wal_dir, 1)
    data = bytearray(path.read_bytes())
    data[ends[0] + RECORD_OVERHEAD + 1] ^= 0xFF  # inside the second record
    path.write_bytes(bytes(data))

    with Wal(wal_dir) as wal:
        # Not the newest file: recovery leaves it alone, it is not silently cut.
        assert path.stat().st_size == ends[-1]
        assert wal.read(2) == [b"in segment 2"]
        with pytest.raises(WalCorrupt) as caught:
            wal.read(1)
    assert caught.value.path == path
    assert caught.value.offset == ends[0]
    assert "checksum" in str(caught.value)
    assert str(path) in str(caught.value)


def test_truncated_sealed_segment_raises_walcorrupt(wal_dir: Path) -> None:
    ends = write_three(wal_dir)
    with Wal(wal_dir) as wal:
        wal.append_sync(b"in segment 2")
    os.truncate(seg_path(wal_dir, 1), ends[-1] - 1)
    with Wal(wal_dir) as wal, pytest.raises(WalCorrupt) as caught:
        wal.read(1)
    assert caught.value.offset == ends[1]


def test_foreign_or_renamed_segment_raises_walcorrupt(wal_dir: Path) -> None:
    write_three(wal_dir)
    with Wal(wal_dir) as wal:
        wal.append_sync(b"in segment 2")
    # A segment renamed to another seq: its header still names seq 1.
    os.rename(seg_path(wal_dir, 1), seg_path(wal_dir, 9))
    with Wal(wal_dir) as wal:
        assert wal.sealed() == [2, 9]
        with pytest.raises(WalCorrupt, match="header") as caught:
            wal.read(9)
        assert caught.value.offset == 0
        assert wal.append_sync(b"y").seq == 10
