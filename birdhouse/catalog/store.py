"""Catalog persistence inside the storage backend itself (DESIGN: one
dependency for scale-out, every node sees the same catalog).

One table holds every record as a JSON document::

    birdhouse.objects(kind, id, workspace_id, name, body, version, deleted)
    ENGINE = ReplacingMergeTree(version) ORDER BY (kind, id)

A write inserts a new version; a delete inserts a tombstone. Reads use
``FINAL`` so the newest version of each ``(kind, id)`` wins. The in-memory
cache in :class:`birdhouse.catalog.Catalog` is what requests read; this
module only loads and saves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TypeVar

import msgspec

from birdhouse.backends import Backend
from birdhouse.catalog.models import DataSource, Pipe, SharedSecret, Token, Workspace
from birdhouse.schema.names import validate_identifier

Record = Workspace | Token | DataSource | Pipe | SharedSecret
R = TypeVar("R", Workspace, Token, DataSource, Pipe, SharedSecret)

KINDS: dict[str, type[Record]] = {
    "workspace": Workspace,
    "token": Token,
    "datasource": DataSource,
    "pipe": Pipe,
    "secret": SharedSecret,
}
KIND_OF: dict[type[Record], str] = {cls: kind for kind, cls in KINDS.items()}


class _Row(msgspec.Struct):
    kind: str
    id: str
    workspace_id: str
    name: str
    body: str
    version: int
    deleted: int


class CatalogStore:
    """Loads and saves catalog records in ``<database>.objects``."""

    def __init__(self, backend: Backend, database: str = "birdhouse") -> None:
        self.backend = backend
        self.database = validate_identifier(database)
        self.table = f"`{self.database}`.`objects`"
        self._clock_lock = threading.Lock()
        self._last_version = 0

    def ensure_schema(self) -> None:
        self.backend.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        self.backend.command(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "kind LowCardinality(String), id String, workspace_id String, name String, "
            "body String, version UInt64, deleted UInt8) "
            "ENGINE = ReplacingMergeTree(version) ORDER BY (kind, id)"
        )

    def _next_version(self) -> int:
        # Nanosecond wall clock, forced monotonic within this process so two
        # writes in the same nanosecond still order.
        with self._clock_lock:
            self._last_version = max(time.time_ns(), self._last_version + 1)
            return self._last_version

    def _write(self, record: Record, deleted: bool) -> None:
        row = _Row(
            kind=KIND_OF[type(record)],
            id=record.id,
            workspace_id=getattr(record, "workspace_id", ""),
            name=record.name,
            body=msgspec.json.encode(record).decode(),
            version=self._next_version(),
            deleted=int(deleted),
        )
        self.backend.insert(self.table, msgspec.json.encode(row) + b"\n", settings={"insert_deduplicate": 0})

    def save(self, record: Record) -> None:
        self._write(record, deleted=False)

    def delete(self, record: Record) -> None:
        self._write(record, deleted=True)

    def load(self) -> Iterator[Record]:
        """Every live record, newest version of each."""
        result = self.backend.query(
            f"SELECT kind, id, workspace_id, name, body, version, deleted FROM {self.table} FINAL "
            "WHERE deleted = 0 ORDER BY version",
            "JSONEachRow",
        )
        for line in result.body.splitlines():
            row = msgspec.json.decode(line, type=_Row)
            cls = KINDS.get(row.kind)
            if cls is not None:
                yield msgspec.json.decode(row.body, type=cls)
