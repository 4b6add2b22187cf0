"""The WAL's vocabulary: tickets, stats, fsync modes and errors.

All three errors derive from `WalError`, so the HTTP layer needs one
``except WalError`` to answer E20 / 503 (the single backpressure mechanism).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

FsyncMode = Literal["always", "interval", "off"]


@dataclass(frozen=True, order=True, slots=True)
class Ticket:
    """The position just past one appended record: segment seq, then end offset in that file.

    Tickets order like the log itself ((seq, offset) lexicographically).
    Holding a ticket does *not* mean the record is durable: only a
    `Wal.sync` call that returned for it does.
    """

    seq: int
    offset: int


@dataclass(frozen=True, slots=True)
class WalStats:
    """A snapshot of counters for metrics; the counters count this process only."""

    fsyncs: int
    """fdatasync calls on segment files (group commit makes this far below `records`)."""
    records: int
    """Records appended since the WAL was opened."""
    bytes_written: int
    """Framed record bytes appended since the WAL was opened."""
    segments: int
    """Segment files on disk: the sealed ones plus the active one."""
    total_bytes: int
    """Bytes of all segment files, the figure `max_bytes` is checked against."""
    failed: bool
    """True while appends are refused after an I/O error (until `Wal.reset_failure`)."""


class WalError(Exception):
    """The WAL cannot take or give data right now; nothing was accepted.

    Raised on I/O errors (disk full, EIO, failed fsync) and, after one, on every
    append until `Wal.reset_failure` succeeds.
    """


class WalFull(WalError):
    """Appending would push the segment files past `max_bytes`; nothing was written.

    Backpressure, not a fault: appends succeed again once flushed segments are deleted.
    """


class WalCorrupt(WalError):
    """A sealed segment holds a record that fails its checks (bit rot, a foreign file).

    Names the file and the byte offset of the first bad record so an operator
    can inspect it; the WAL never skips a bad record silently.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt WAL segment at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason
