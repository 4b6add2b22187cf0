"""Auto-create (SPEC §9.1, ``compat.mode=classic``): a data source created
from the first events sent to a name that does not exist yet.

Concurrent first requests for one name create it once: they serialise on a
per-(workspace, name) lock and re-check existence inside it, so the second
one finds the data source the first created and appends normally.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from birdhouse.catalog.catalog import Catalog, CatalogError
from birdhouse.catalog.datasources import create_datasource
from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.config import Settings
from birdhouse.schema.infer import infer_schema, sample_body
from birdhouse.schema.names import InvalidName, validate_datasource_name

INVALID_DATA = "Analysis error, invalid data. We could not infer the schema, please create the datasource manually"


class AutocreateError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Autocreator:
    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.settings = settings
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def get_or_create(self, workspace: Workspace, name: str, body: bytes) -> DataSource:
        try:
            validate_datasource_name(name)
        except InvalidName:
            raise AutocreateError(400, f"Invalid Data Source name '{name[:255]}'") from None
        limit = self.settings.limits.max_datasources_per_workspace
        if limit and len(self.catalog.workspace_datasources(workspace.id)) >= limit:
            raise AutocreateError(400, f"Data Source limit reached ({limit})")
        key = (workspace.id, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), self.settings.limits.autocreate_lock_ms / 1000)
        except TimeoutError:
            raise AutocreateError(503, "") from None
        try:
            existing = self.catalog.find_datasource(workspace.id, name)
            if existing is None and self.catalog.shared:
                # Another node may have created it since this request looked.
                await run_in_threadpool(self.catalog.refresh)
                existing = self.catalog.find_datasource(workspace.id, name)
            if existing is not None:
                return existing
            return await run_in_threadpool(self._create, workspace, name, body)
        finally:
            lock.release()
            if not lock.locked():
                self._locks.pop(key, None)

    def _create(self, workspace: Workspace, name: str, body: bytes) -> DataSource:
        inference = self.settings.inference
        inferred = sample_body(
            body,
            inference.sample_initial_bytes,
            inference.sample_max_bytes,
            lambda sample: infer_schema(sample, max_columns=inference.max_columns),
        )
        if inferred is None or not inferred.columns:
            raise AutocreateError(400, INVALID_DATA)
        try:
            return create_datasource(
                self.catalog,
                workspace,
                name,
                inferred.columns,
                inferred.engine,
                max_per_workspace=self.settings.limits.max_datasources_per_workspace,
            )
        except CatalogError as exc:
            raise AutocreateError(exc.status, exc.message) from None
