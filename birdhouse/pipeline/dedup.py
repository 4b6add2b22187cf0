"""Idempotent retries (SPEC §8.5): ``Idempotency-Key``, optional body hashing.

A request's dedup key travels in its WAL record, so it is recorded durably in
the same group commit that accepts the rows. When the flusher delivers the
record it also writes the key to ``<catalog db>.dedup`` (TTL = the window),
which is where the index is reloaded from after a restart; keys of records
still in the WAL are reloaded from the WAL itself.

A hit answers with the original counts and stores nothing. A request that
arrives while an identical one is still being accepted waits for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterable

import msgspec

from birdhouse.backends import Backend
from birdhouse.pipeline.records import AcceptedBatch, decode_batch
from birdhouse.wal import Wal


def idempotency_key(workspace_id: str, datasource_id: str, header: str) -> str:
    return hashlib.sha256(f"{workspace_id}\0{datasource_id}\0{header}".encode()).hexdigest()


def body_key(workspace_id: str, datasource_id: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{workspace_id}\0{datasource_id}\0".encode())
    digest.update(body)
    return "b" + digest.hexdigest()


class Entry(msgspec.Struct, frozen=True):
    successful_rows: int
    quarantined_rows: int
    request_id: str
    # The WAL segment holding the original; 0 once it is known delivered.
    seq: int
    expires_at: float


class _Row(msgspec.Struct):
    key: str
    successful_rows: int
    quarantined_rows: int
    request_id: str
    created: int


class DedupIndex:
    def __init__(self, backend: Backend, database: str, window_s: int) -> None:
        self.backend = backend
        self.table = f"`{database}`.`dedup`"
        self.window_s = window_s
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._inflight: dict[str, asyncio.Future[None]] = {}

    def open(self, wal: Wal) -> None:
        self.backend.command(
            f"CREATE TABLE IF NOT EXISTS {self.table} (key String, successful_rows UInt64, quarantined_rows UInt64, "
            f"request_id String, created DateTime) ENGINE = ReplacingMergeTree ORDER BY key"
            # Without TTL (old servers) expired keys stay; lookups filter them by age.
            + (f" TTL created + toIntervalSecond({int(self.window_s)})" if self.backend.capabilities.ttl else "")
        )
        now = time.time()
        result = self.backend.query(
            f"SELECT key, successful_rows, quarantined_rows, request_id, toUnixTimestamp(created) AS created "
            f"FROM {self.table} FINAL WHERE created > now() - toIntervalSecond({int(self.window_s)})",
            "JSONEachRow",
        )
        for line in result.body.splitlines():
            row = msgspec.json.decode(line, type=_Row)
            self._entries[row.key] = Entry(
                row.successful_rows, row.quarantined_rows, row.request_id, 0, row.created + self.window_s
            )
        for seq in wal.sealed():
            for payload in wal.read(seq):
                batch = decode_batch(payload)
                if batch.dedup_key:
                    self.remember(batch, seq, now)

    # ------------------------------------------------------------ lookups

    def lookup(self, key: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at < time.time():
                del self._entries[key]
                return None
            return entry

    def remember(self, batch: AcceptedBatch, seq: int, now: float | None = None) -> None:
        expires = (now or time.time()) + self.window_s
        with self._lock:
            self._entries[batch.dedup_key] = Entry(
                batch.successful_rows, batch.quarantined_rows, batch.request_id, seq, expires
            )
            if len(self._entries) % 4096 == 0:
                self._prune()

    def forget(self, key: str) -> None:
        """The request was not ingested after all (E22): a retry must be new."""
        with self._lock:
            self._entries.pop(key, None)

    def _prune(self) -> None:
        now = time.time()
        for key in [k for k, e in self._entries.items() if e.expires_at < now]:
            del self._entries[key]

    # Concurrent identical requests: the second waits for the first.

    async def reserve(self, key: str) -> None:
        while key in self._inflight:
            await asyncio.shield(self._inflight[key])
        self._inflight[key] = asyncio.get_running_loop().create_future()

    def release(self, key: str) -> None:
        future = self._inflight.pop(key, None)
        if future is not None and not future.done():
            future.set_result(None)

    # -------------------------------------------------------------- flush

    def persist(self, batches: Iterable[AcceptedBatch]) -> None:
        """Record delivered keys in the backend (called by the flusher)."""
        keyed = [b for b in batches if b.dedup_key]
        if not keyed:
            return
        now = int(time.time())
        body = b"".join(
            msgspec.json.encode(_Row(b.dedup_key, b.successful_rows, b.quarantined_rows, b.request_id, now)) + b"\n"
            for b in keyed
        )
        self.backend.insert(self.table, body, "JSONEachRow", settings={"insert_deduplicate": 0})
