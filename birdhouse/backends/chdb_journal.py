"""Crash-safe deduplicated inserts on the embedded engine.

Replays rely on ``insert_deduplication_token``: a segment re-delivered after
a crash must not insert what already landed. On a plain MergeTree the engine
appends the token's record to the table's deduplication log *before* it
renames the new part into place. When the whole engine dies in between (a
kill -9 of this process kills the embedded engine with it) the record
survives and the part does not, and the replay of the same token is then
dropped as a duplicate: acknowledged rows lost. A ClickHouse server does not
die with us, so only the embedded backend needs this.

The journal closes that window. Inserts are serialised by the backend's
lock, so at most one is in flight when the process dies. Before each token'd
insert into a MergeTree table the journal records the token, the table's
data directory and the highest block number on disk; afterwards it marks the
insert done. At the next start an insert still marked open is resolved from
the parts on disk: a part with a higher block number means it committed (its
deduplication record is sound, a replay is dropped as it should be);
otherwise it did not, its record may dangle, and every later insert with that
token uses a fresh alias the engine has never seen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from pathlib import Path

import msgspec

log = logging.getLogger("birdhouse.chdb")

_OPEN, _DONE = b"O", b"D"
_FRAME = struct.Struct("<cII")  # state, payload length, crc32(payload)
# Aliases are kept for tokens whose segment may still be replayed; one entry
# per crash, so a small cap is generous.
MAX_ALIASES = 1000


class Intent(msgspec.Struct, frozen=True):
    token: str
    table_dir: str
    block: int


def max_block(table_dir: str) -> int:
    """The highest block number of any part directory under ``table_dir``.

    Part names are ``<partition>_<min block>_<max block>_<level>[_<mutation>]``;
    partition ids never contain ``_``. Temporary parts (``tmp_*``,
    ``delete_tmp_*``) and other files do not parse and are skipped: a part
    counts only once it was renamed into place, which is the commit point.
    """
    top = 0
    try:
        names = os.listdir(table_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        fields = name.split("_")
        if len(fields) not in (4, 5) or name.startswith(("tmp", "delete_tmp")):
            continue
        try:
            top = max(top, int(fields[2]))
        except ValueError:
            continue
    return top


class InsertJournal:
    """The intent file plus the persisted token aliases, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._intent_path = directory / "birdhouse-insert.intent"
        self._alias_path = directory / "birdhouse-insert.aliases"
        self._aliases: dict[str, int] = {}
        if self._alias_path.exists():
            with contextlib.suppress(msgspec.DecodeError):
                self._aliases = msgspec.json.decode(self._alias_path.read_bytes(), type=dict[str, int])
        self._fd = os.open(self._intent_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._resolve()

    def token_for(self, token: str) -> str:
        """The token to send for ``token``: itself, or its current alias."""
        round_no = self._aliases.get(token)
        return token if round_no is None else f"{token}~r{round_no}"

    def begin(self, token: str, table_dir: str) -> None:
        """Record an insert about to run (caller holds the backend lock)."""
        payload = msgspec.json.encode(Intent(token, table_dir, max_block(table_dir)))
        # One pwrite: a killed process either wrote all of it or none.
        os.pwrite(self._fd, _FRAME.pack(_OPEN, len(payload), zlib.crc32(payload)) + payload, 0)

    def done(self) -> None:
        os.pwrite(self._fd, _DONE, 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read_open(self) -> Intent | None:
        data = os.pread(self._fd, 1 << 16, 0)
        if len(data) < _FRAME.size or data[:1] != _OPEN:
            return None
        _, length, crc = _FRAME.unpack_from(data)
        payload = data[_FRAME.size : _FRAME.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            log.warning("unreadable insert intent in %s; ignored", self._intent_path)
            return None
        return msgspec.json.decode(payload, type=Intent)

    def _resolve(self) -> None:
        intent = self._read_open()
        if intent is None:
            return
        if max_block(intent.table_dir) > intent.block:
            log.info("the insert in flight at the last stop committed; its replay will be deduplicated")
        else:
            # Not committed: the engine may hold a deduplication record without
            # the part, so the replay must not reuse the token.
            self._aliases[intent.token] = self._aliases.get(intent.token, 0) + 1
            while len(self._aliases) > MAX_ALIASES:
                del self._aliases[next(iter(self._aliases))]
            self._save_aliases()
            log.warning("the insert in flight at the last stop did not commit; its replay gets a fresh token")
        self.done()
        os.fsync(self._fd)

    def _save_aliases(self) -> None:
        tmp = self._alias_path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(msgspec.json.encode(self._aliases))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._alias_path)
