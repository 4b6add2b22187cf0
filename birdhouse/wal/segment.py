"""Segment files: names, header, record framing, strict reads and tail recovery.

This module is the only reader and writer of the on-disk format described in
the package docstring (`birdhouse.wal`), so the format lives in one place.
Functions here raise `OSError` for I/O failures and leave policy (failure
state, counters, locking) to `birdhouse.wal.log`.
"""

from __future__ import annotations

import os
import struct
import zlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from birdhouse.wal.types import WalCorrupt

MAGIC = b"BHWAL1\n"
VERSION = 1
SUFFIX = ".wal"
_HEADER = struct.Struct("<7sBQ")  # magic, format version, the file's own seq
_RECORD = struct.Struct("<II")  # payload length, zlib.crc32(payload)
HEADER_SIZE = _HEADER.size
RECORD_OVERHEAD = _RECORD.size
MAX_PAYLOAD = 0xFFFF_FFFF

HeaderState = Literal["ok", "torn", "bad"]


def segment_name(seq: int) -> str:
    return f"{seq:020d}{SUFFIX}"


def parse_name(name: str) -> int | None:
    """The seq of a segment file name, None for any other file (e.g. the lock file)."""
    stem, _, ext = name.partition(".")
    if ext != SUFFIX[1:] or len(stem) != 20 or not (stem.isascii() and stem.isdigit()):
        return None
    return int(stem)


def list_segments(directory: Path) -> list[int]:
    return sorted(seq for name in os.listdir(directory) if (seq := parse_name(name)) is not None)


def encode_header(seq: int) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, seq)


def encode_record(payload: bytes) -> bytes:
    """Frame one payload. Empty payloads are refused: a zero length is what a
    zero-filled tail (file size persisted, data blocks not) reads as, and the
    CRC of zero bytes is 0, so length 0 must never be valid."""
    n = len(payload)
    if not 0 < n <= MAX_PAYLOAD:
        raise ValueError(f"WAL payload must be 1..{MAX_PAYLOAD} bytes, got {n}")
    return _RECORD.pack(n, zlib.crc32(payload)) + payload


def header_state(head: bytes, seq: int) -> HeaderState:
    """Classify the first bytes of segment `seq`.

    "torn": shorter than a header or zero-filled, i.e. a crash while the file
    was being created. The header is fdatasync'd before any record is
    appended, so such a file never held an acknowledged record.
    "bad": a full header that is not ours (foreign file, renamed file, bit rot).
    """
    head = head[:HEADER_SIZE]
    if head == encode_header(seq):
        return "ok"
    if len(head) < HEADER_SIZE or not any(head):
        return "torn"
    return "bad"


@dataclass(frozen=True, slots=True)
class Scan:
    spans: list[tuple[int, int]]
    """(start, end) of each good payload, in file order."""
    end: int
    """Offset just past the last good record: where a torn tail is cut."""
    error: str | None
    """Why the scan stopped before the end of the data; None if every byte parsed."""


def scan(data: bytes) -> Scan:
    """Walk the records after the header, stopping at the first that fails a check."""
    view = memoryview(data)
    size = len(data)
    spans: list[tuple[int, int]] = []
    pos = HEADER_SIZE
    while pos < size:
        if size - pos < RECORD_OVERHEAD:
            return Scan(spans, pos, "partial record header")
        length, crc = _RECORD.unpack_from(data, pos)
        start = pos + RECORD_OVERHEAD
        if length == 0:
            return Scan(spans, pos, "zero record length")
        if length > size - start:
            return Scan(spans, pos, f"record length {length} runs past the end of the file")
        if zlib.crc32(view[start : start + length]) != crc:
            return Scan(spans, pos, "checksum mismatch")
        spans.append((start, start + length))
        pos = start + length
    return Scan(spans, pos, None)


def read_segment(path: Path, seq: int) -> list[bytes]:
    """Every payload of a sealed segment, or `WalCorrupt` at the first bad byte.

    Sealed segments were fdatasync'd whole before the next segment was
    created, so unlike recovery this tolerates nothing: any bad record,
    including a torn last one, is corruption.
    """
    data = path.read_bytes()
    if header_state(data, seq) != "ok":
        raise WalCorrupt(path, 0, "missing or foreign segment header")
    found = scan(data)
    if found.error is not None:
        raise WalCorrupt(path, found.end, found.error)
    return [data[a:b] for a, b in found.spans]


def recover(path: Path, seq: int, *, newest: bool, sync: bool) -> int | None:
    """Bring one segment found at start-up to a readable state.

    Returns the size to keep it as a sealed segment, or None when it holds no
    record (torn header, header only) and should be dropped. Only the newest
    segment can have a torn tail: every older one was fdatasync'd whole before
    its successor was created, so older ones are not scanned here (start-up
    stays O(one segment)) and `read_segment` reports any damage in them.
    A full header that is not ours is kept, never guessed over: reading it
    raises `WalCorrupt`.
    """
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        state = header_state(os.pread(fd, HEADER_SIZE, 0), seq)
        if state == "torn":
            return None
        if state == "bad" or not newest:
            return size if state == "bad" or size > HEADER_SIZE else None
        found = scan(os.pread(fd, size, 0))
        if found.end < size:
            os.ftruncate(fd, found.end)
            if sync:
                os.fdatasync(fd)
        return found.end if found.spans else None
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite until every byte is written; a short write (ENOSPC mid-way) raises."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:  # the kernel reports errors by raising; guard the loop anyway
            raise OSError(f"pwrite wrote {n} bytes")
        view = view[n:]
        offset += n


def fsync_dir(directory: Path) -> None:
    """Make creations and unlinks in `directory` durable (a new file's name is
    not on disk until its directory is fsync'd)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A segment file made ahead of need under a name `parse_name` ignores: creating
# a file (allocating its inode) can take a millisecond on a busy ext4, and
# rotation runs with the WAL lock held; renaming takes microseconds.
SPARE_NAME = "next.spare"


def prepare_spare(directory: Path, seq: int, *, sync: bool) -> None:
    """Write the file segment `seq` will start as (its header, fdatasync'd with
    `sync`) under SPARE_NAME. An existing spare is truncated and reused."""
    fd = os.open(directory / SPARE_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        write_all(fd, encode_header(seq), 0)
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _spare_for(directory: Path, seq: int) -> Path | None:
    """The spare if it is exactly segment `seq`'s header (else it is stale or half-made)."""
    spare = directory / SPARE_NAME
    try:
        fd = os.open(spare, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fits = os.fstat(fd).st_size == HEADER_SIZE and os.pread(fd, HEADER_SIZE, 0) == encode_header(seq)
    finally:
        os.close(fd)
    return spare if fits else None


def create_segment(directory: Path, seq: int, *, sync: bool, use_spare: bool = False) -> tuple[int, bool]:
    """Create segment `seq` with its header; return a writable fd and whether a spare became it.

    With `sync`, the header is fdatasync'd and the directory fsync'd before
    returning, so a record appended later can never sit behind a torn header
    or in a file whose name was lost. With `use_spare`, a spare prepared for
    `seq` (header already written and synced) is renamed into place instead.
    On failure the half-made file is removed (best effort; recovery drops a
    torn one anyway).
    """
    path = directory / segment_name(seq)
    spare = _spare_for(directory, seq) if use_spare else None
    if spare is not None:
        os.rename(spare, path)
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        if spare is None:
            write_all(fd, encode_header(seq), 0)
            if sync:
                os.fdatasync(fd)
        # Also in fsync=off: cheap, and it keeps the highest seq on disk (seqs are never reused).
        fsync_dir(directory)
    except BaseException:
        os.close(fd)
        with suppress(OSError):
            path.unlink()
        raise
    return fd, spare is not None
