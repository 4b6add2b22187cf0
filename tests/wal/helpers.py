"""Helpers shared by the WAL tests."""

from __future__ import annotations

from pathlib import Path

from birdhouse.wal import Wal
from birdhouse.wal.segment import list_segments, segment_name


def seg_path(directory: Path, seq: int) -> Path:
    return directory / segment_name(seq)


def newest(directory: Path) -> Path:
    """The newest segment file: the active one while a Wal is open (or was, before a crash)."""
    return seg_path(directory, list_segments(directory)[-1])


def unacked(wal: Wal) -> list[bytes]:
    """Every payload in the sealed segments, in log order."""
    return [payload for seq in wal.sealed() for payload in wal.read(seq)]
