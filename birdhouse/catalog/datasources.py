"""Data source lifecycle: the tables behind a catalog record.

A data source is two tables in its workspace's database, ``<name>`` and
``<name>_quarantine`` (SPEC §6), plus the catalog record. Creation is
all-or-nothing: if any statement fails, whatever was already created is
dropped again before the error reaches the caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import msgspec

from birdhouse.backends import BackendError
from birdhouse.catalog.catalog import Catalog, CatalogError
from birdhouse.catalog.models import DataSource, Workspace, new_datasource_id, utc_now
from birdhouse.schema.columns import Column
from birdhouse.schema.engine import EngineSpec, engine_sql, quarantine_columns, quarantine_engine
from birdhouse.schema.names import InvalidName, validate_datasource_name
from birdhouse.schema.types import REQUIRED_CREATE_SETTINGS

# Replaying a WAL segment must be a no-op (DESIGN invariant 3): plain
# MergeTree keeps no insert-dedup window unless told to.
DEDUP_WINDOW_SETTING = "non_replicated_deduplication_window"
DEDUP_WINDOW = 10000


def table_ref(workspace: Workspace, table: str) -> str:
    return f"`{workspace.database}`.`{table}`"


def _with_dedup_window(engine: EngineSpec) -> EngineSpec:
    if engine.engine == "Null" or DEDUP_WINDOW_SETTING in (engine.settings or ""):
        return engine
    extra = f"{DEDUP_WINDOW_SETTING} = {DEDUP_WINDOW}"
    settings = f"{engine.settings}, {extra}" if engine.settings else extra
    return msgspec.structs.replace(engine, settings=settings)


def _create_table_sql(ref: str, columns: Sequence[Column], engine: EngineSpec) -> str:
    body = ",\n    ".join(column.sql() for column in columns)
    return f"CREATE TABLE {ref} (\n    {body}\n) {engine_sql(engine, list(columns))}"


def create_datasource(
    catalog: Catalog,
    workspace: Workspace,
    name: str,
    columns: Sequence[Column],
    engine: EngineSpec,
    *,
    description: str = "",
    tags: Sequence[str] = (),
    indexes: Sequence[str] = (),
    max_per_workspace: int = 0,
) -> DataSource:
    try:
        validate_datasource_name(name)
    except InvalidName as exc:
        raise CatalogError(str(exc)) from None
    if not columns:
        raise CatalogError("A data source needs at least one column in its schema")
    with catalog.lock:
        if catalog.find_datasource(workspace.id, name) is not None:
            raise CatalogError(f"There is already a Data Source with name '{name}'")
        existing = catalog.workspace_datasources(workspace.id)
        if max_per_workspace and len(existing) >= max_per_workspace:
            raise CatalogError(f"Data Source limit reached ({max_per_workspace})")
        main_ref = table_ref(workspace, name)
        quarantine_ref = table_ref(workspace, f"{name}_quarantine")
        try:
            # Render both statements before running either: a bad expression
            # is refused here and nothing reaches the engine.
            statements = [
                (main_ref, _create_table_sql(main_ref, columns, _with_dedup_window(engine))),
                (
                    quarantine_ref,
                    _create_table_sql(
                        quarantine_ref,
                        quarantine_columns(list(columns)),
                        _with_dedup_window(quarantine_engine(list(columns))),
                    ),
                ),
            ]
        except ValueError as exc:
            raise CatalogError(str(exc)) from None
        created: list[str] = []
        try:
            for ref, statement in statements:
                # LowCardinality over numbers/dates and wide FixedString are
                # valid Tinybird types the engine calls "suspicious" by default.
                catalog.backend.command(statement, settings=REQUIRED_CREATE_SETTINGS)
                created.append(ref)
        except BackendError as exc:
            for ref in created:
                catalog.backend.command(f"DROP TABLE IF EXISTS {ref}")
            raise CatalogError(f"Could not create Data Source '{name}': {exc.message}") from None
        datasource = DataSource(
            id=new_datasource_id(),
            workspace_id=workspace.id,
            name=name,
            columns=list(columns),
            engine=engine,
            description=description,
            tags=list(tags),
            indexes=list(indexes),
        )
        catalog.save_datasource(datasource)
        return datasource


def update_datasource(catalog: Catalog, datasource: DataSource, **changes: object) -> DataSource:
    """Change metadata only (description, tags); schema changes go through alter."""
    allowed = {"description", "tags"}
    unknown = set(changes) - allowed
    if unknown:
        raise CatalogError(f"Cannot change {', '.join(sorted(unknown))} of an existing Data Source")
    updated = msgspec.structs.replace(datasource, updated_at=utc_now(), **changes)
    catalog.save_datasource(updated)
    return updated


def drop_datasource(catalog: Catalog, workspace: Workspace, datasource: DataSource) -> None:
    with catalog.lock:
        catalog.backend.command(f"DROP TABLE IF EXISTS {table_ref(workspace, datasource.quarantine_name)}")
        catalog.backend.command(f"DROP TABLE IF EXISTS {table_ref(workspace, datasource.name)}")
        catalog.forget_datasource(datasource)


def truncate_table(catalog: Catalog, workspace: Workspace, table: str) -> None:
    catalog.backend.command(f"TRUNCATE TABLE IF EXISTS {table_ref(workspace, table)}")


@dataclasses.dataclass(frozen=True)
class TableStats:
    row_count: int
    bytes: int


def table_stats(catalog: Catalog, workspace: Workspace, table: str) -> TableStats:
    result = catalog.backend.query(
        "SELECT toUInt64(sum(rows)) AS r, toUInt64(sum(bytes_on_disk)) AS b FROM system.parts "
        "WHERE active AND database = {db:String} AND table = {t:String}",
        "JSONEachRow",
        params={"db": workspace.database, "t": table},
    )
    row = msgspec.json.decode(result.body.splitlines()[0]) if result.body.strip() else {}
    return TableStats(int(row.get("r", 0)), int(row.get("b", 0)))
