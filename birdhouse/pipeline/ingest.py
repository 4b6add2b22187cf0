"""From a decoded request body to rows in the backend.

Conversion is compiled once per data source schema and cached. The
:class:`Ingestor` inserts a request's good rows into the landing table and its
quarantine rows into ``<ds>_quarantine``, each with its own dedup token so a
retried insert of the same block is a no-op in the engine.

Success of :meth:`Ingestor.ingest` means the backend committed both blocks;
it does *not* mean materialized views downstream succeeded (they run inside
the landing insert and fail it when they fail).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from birdhouse.backends import Backend
from birdhouse.catalog.datasources import table_ref
from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.schema.convert import Converted, Converter


@dataclass(frozen=True)
class IngestResult:
    successful_rows: int
    quarantined_rows: int
    details: list[dict[str, Any]] = field(default_factory=list)


class Ingestor:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._converters: dict[tuple[str, str], Converter] = {}
        self._lock = threading.Lock()

    def converter(self, datasource: DataSource) -> Converter:
        # updated_at changes whenever the record does, so an altered schema
        # never reuses a stale compiled converter.
        key = (datasource.id, datasource.updated_at)
        with self._lock:
            found = self._converters.get(key)
            if found is None:
                for stale in [k for k in self._converters if k[0] == datasource.id]:
                    del self._converters[stale]
                found = self._converters[key] = Converter(datasource.columns)
            return found

    def convert(self, datasource: DataSource, body: bytes, details: bool) -> Converted:
        return self.converter(datasource).convert(body, details=details)

    def write(self, workspace: Workspace, datasource: DataSource, converted: Converted) -> None:
        """Insert both blocks. Raises BackendError when the backend refuses."""
        token = uuid.uuid4().hex
        if converted.successful_rows:
            self.backend.insert(
                table_ref(workspace, datasource.name),
                converted.rows,
                "JSONEachRow",
                columns=converted.columns,
                settings={"insert_deduplication_token": f"{token}-l"},
            )
        if converted.quarantined_rows:
            self.backend.insert(
                table_ref(workspace, datasource.quarantine_name),
                converted.quarantine,
                "JSONEachRow",
                settings={"insert_deduplication_token": f"{token}-q"},
            )
