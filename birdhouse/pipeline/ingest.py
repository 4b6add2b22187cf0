"""From a decoded request body to an accepted, durable batch.

Conversion is compiled once per data source schema and cached. Acceptance
(SPEC §1.4 step 11) is one WAL record holding the request's good rows and
quarantine rows, fsync'd by group commit before :meth:`Ingestor.accept`
returns; only then may the HTTP layer answer 202.

Success of :meth:`Ingestor.accept` means the rows survive a crash of this
process; it does *not* mean they are in the backend yet (the flusher does
that) nor that they survive the loss of this node's disk.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.pipeline.commit import AsyncCommitter
from birdhouse.pipeline.offload import Offload
from birdhouse.pipeline.records import AcceptedBatch, encode_batch
from birdhouse.schema.convert import Converted, Converter
from birdhouse.wal import Ticket, Wal

# Above this a body is converted in this process: a worker would also hold a copy
# of it, its converted rows and their pickle at once, which for the largest bodies
# (up to events.max_decompressed_bytes) means gigabytes more memory.
OFFLOAD_MAX_BYTES = 64 << 20

T = TypeVar("T")


class Ingestor:
    def __init__(
        self,
        wal: Wal,
        expand_json_array_lines: bool = False,
        max_line_bytes: int = 64 << 20,
        conversion_processes: int = 0,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.wal = wal
        self.committer = AsyncCommitter(wal)
        self.expand_json_array_lines = expand_json_array_lines
        self.offload = Offload(conversion_processes)
        self._converters: dict[tuple[str, str], Converter] = {}
        self._specs: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()

    def converter(self, datasource: DataSource) -> Converter:
        return self._cached(self._converters, datasource, lambda: Converter(datasource.columns, **self._options()))

    def convert(self, datasource: DataSource, body: bytes, details: bool) -> Converted:
        return self.converter(datasource).convert(body, details=details)

    async def convert_large(self, datasource: DataSource, body: bytes, details: bool) -> Converted:
        """A body too large to convert on the event loop: in a worker process
        when there is one (pipeline/offload.py), else in a thread."""
        if self.offload.enabled and len(body) <= OFFLOAD_MAX_BYTES:
            key, spec = self._spec(datasource)
            converted = await self.offload.convert(key, spec, body, details)
            if converted is not None:
                return converted
        return await run_in_threadpool(self.convert, datasource, body, details)

    def _spec(self, datasource: DataSource) -> tuple[bytes, bytes]:
        """What a worker process needs to build the same converter (schema/worker.py)."""

        def build() -> tuple[bytes, bytes]:
            spec = pickle.dumps((list(datasource.columns), self._options()), protocol=5)
            return f"{datasource.id}@{datasource.updated_at}".encode(), spec

        return self._cached(self._specs, datasource, build)

    def _options(self) -> dict[str, Any]:
        return {"expand_json_array_lines": self.expand_json_array_lines, "max_line_bytes": self.max_line_bytes}

    def _cached(self, cache: dict[tuple[str, str], T], datasource: DataSource, build: Callable[[], T]) -> T:
        # updated_at changes whenever the record does, so an altered schema
        # never reuses a stale compiled converter (or its spec).
        key = (datasource.id, datasource.updated_at)
        with self._lock:
            found = cache.get(key)
            if found is None:
                for stale in [k for k in cache if k[0] == datasource.id]:
                    del cache[stale]
                found = cache[key] = build()
            return found

    def accept(
        self,
        workspace: Workspace,
        datasource: DataSource,
        converted: Converted,
        request_id: str,
        dedup_key: str = "",
    ) -> tuple[Ticket, AcceptedBatch]:
        """Append the batch to the WAL and wait for its group commit (blocking).
        Raises WalError (→ 503) when the WAL cannot take it."""
        batch = self.batch(workspace, datasource, converted, request_id, dedup_key)
        return self.wal.append_sync(encode_batch(batch)), batch

    async def accept_async(
        self,
        workspace: Workspace,
        datasource: DataSource,
        converted: Converted,
        request_id: str,
        dedup_key: str = "",
    ) -> tuple[Ticket, AcceptedBatch]:
        """As :meth:`accept`, from the event loop: the fsync is shared with
        every request appending meanwhile (pipeline/commit.py)."""
        batch = self.batch(workspace, datasource, converted, request_id, dedup_key)
        return await self.committer.append(encode_batch(batch)), batch

    @staticmethod
    def batch(
        workspace: Workspace, datasource: DataSource, converted: Converted, request_id: str, dedup_key: str
    ) -> AcceptedBatch:
        return AcceptedBatch(
            request_id=request_id,
            workspace_id=workspace.id,
            datasource_id=datasource.id,
            columns=converted.columns,
            rows=converted.rows,
            quarantine=converted.quarantine,
            successful_rows=converted.successful_rows,
            quarantined_rows=converted.quarantined_rows,
            dedup_key=dedup_key,
        )
