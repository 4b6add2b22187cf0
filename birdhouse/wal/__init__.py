"""The node's local write-ahead log: opaque payloads, durable before any 2xx.

The WAL stores payload bytes it does not interpret; the pipeline puts
encoded request batches in them and flushes sealed segments to the backend.

On-disk format (all integers little-endian)
-------------------------------------------
One directory holds ``LOCK`` (flock'd by the one process using the WAL) and
segment files named ``<seq:020d>.wal``; seq starts at 1 and only grows. Each
segment is::

    header   16 bytes   magic b"BHWAL1\\n" (7) | version u8 (= 1) | seq u64 (the file's own seq)
    record*             length u32 | crc u32 | payload (length bytes)

``crc = zlib.crc32(payload)``. ``length`` is at least 1: a zero length is
what a zero-filled tail reads as (and crc32 of nothing is 0), so it is never
valid. There is no footer; a segment ends where its file ends.

Invariants
----------
1. Exactly one segment is *active* (open for appends): the one with the
   highest seq. All others are *sealed* and never change again; only sealed
   segments are listed by `Wal.sealed` or given to `Wal.read`.
2. A segment is sealed only after it was fdatasync'd whole, and a segment
   file is created (header fdatasync'd, directory fsync'd) before any record
   goes into it. Hence only the newest segment can have a torn tail after a
   crash, and a torn header means the file never held a synced record.
3. `Wal.sync` returns only after an fdatasync that began after the record
   was written completed successfully (group commit: one fdatasync serves
   every record written before it began). With fsync=off it returns at once
   and durability is the page cache's (dev only).
4. After an I/O error the WAL refuses appends (`WalError`) until
   `Wal.reset_failure` succeeds. A failed fdatasync is never retried as if it
   had succeeded: the failed segment is truncated to its last successful
   sync and sealed, those records' `sync` raises, and appends go to a new
   segment. A record whose `sync` raised was never acknowledged.
5. Recovery at open: the newest segment is scanned and cut at its last good
   record (partial header, partial payload, bad checksum, zero length);
   segments holding no record are removed; every remaining segment becomes
   sealed, in seq order; a new active segment is created after them — before
   the empty ones are removed, so the highest seq ever used is always on disk
   and a seq is never reused (the pipeline may derive dedup tokens from it).
6. Older segments are not scanned at open; `Wal.read` verifies every record
   and raises `WalCorrupt` (file and offset) at the first bad one, never
   skipping it silently.
7. A segment is deleted only by `Wal.delete`, which the pipeline calls after
   the backend acknowledged every record in it (DESIGN invariant 2).
8. Segment files never exceed `max_bytes` in total: an append that would
   raises `WalFull` and writes nothing (backpressure → 503).
"""

from birdhouse.wal.log import Wal
from birdhouse.wal.types import FsyncMode, Ticket, WalCorrupt, WalError, WalFull, WalStats

__all__ = ["FsyncMode", "Ticket", "Wal", "WalCorrupt", "WalError", "WalFull", "WalStats"]
