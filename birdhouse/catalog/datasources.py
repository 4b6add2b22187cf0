"""Data source lifecycle: the tables behind a catalog record.

A data source is two tables in its workspace's database, ``<name>`` and
``<name>_quarantine`` (SPEC §6), plus the catalog record. Creation is
all-or-nothing: if any statement fails, whatever was already created is
dropped again before the error reaches the caller.

When the backend runs in cluster mode (``cluster=`` in a ClickHouse DSN), each
of the two is a Distributed table of that name over local tables on every
shard (:mod:`birdhouse.backends.cluster`); create, drop, truncate and
statistics go through the cluster, everything else is unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import msgspec

from birdhouse.backends import Backend, BackendError, Capabilities
from birdhouse.backends.cluster import Cluster
from birdhouse.catalog.catalog import Catalog, CatalogError
from birdhouse.catalog.models import DataSource, Workspace, new_datasource_id, utc_now
from birdhouse.schema.columns import Column, is_json_typed
from birdhouse.schema.engine import EngineSpec, engine_sql, quarantine_columns, quarantine_engine
from birdhouse.schema.names import InvalidName, validate_datasource_name, validate_identifier
from birdhouse.schema.types import REQUIRED_CREATE_SETTINGS, ChType, UnsupportedType, check_ingestible, parse_type

# Replaying a WAL segment must be a no-op (DESIGN invariant 3): plain
# MergeTree keeps no insert-dedup window unless told to.
DEDUP_WINDOW_SETTING = "non_replicated_deduplication_window"
DEDUP_WINDOW = 10000


def table_ref(workspace: Workspace, table: str) -> str:
    return f"`{workspace.database}`.`{table}`"


def _with_dedup_window(engine: EngineSpec, capabilities: Capabilities) -> EngineSpec:
    # Servers without the setting dedup replays through the backend's own
    # delivered-token ledger instead.
    if not capabilities.dedup_window or engine.engine == "Null" or DEDUP_WINDOW_SETTING in (engine.settings or ""):
        return engine
    extra = f"{DEDUP_WINDOW_SETTING} = {DEDUP_WINDOW}"
    settings = f"{engine.settings}, {extra}" if engine.settings else extra
    return msgspec.structs.replace(engine, settings=settings)


def _type_families(t: ChType) -> Iterator[str]:
    yield t.name
    for arg in t.args:
        if isinstance(arg, ChType):
            yield from _type_families(arg)


def _check_types_supported(capabilities: Capabilities, columns: Sequence[Column]) -> None:
    """A type the storage engine lacks is a clear 400 at creation, not a
    failure at the first insert."""
    if not capabilities.data_types:
        return
    for column in columns:
        for family in _type_families(column.ch_type):
            if family not in capabilities.data_types:
                raise CatalogError(
                    f"Type {family} (column '{column.name}') is not supported by the storage engine "
                    f"(ClickHouse {capabilities.version})"
                )


def _check_ingestible(columns: Sequence[Column]) -> None:
    """A JSON-typed data source is fed by /v0/events, so every type must be one it
    can ingest (SPEC §4.2). A data source without json paths (a materialized
    view's target: /v0/events refuses it with E7) may use any engine type, e.g.
    ``AggregateFunction(count)`` for an AggregatingMergeTree target."""
    if not is_json_typed(columns):
        return
    for column in columns:
        try:
            check_ingestible(parse_type(column.type))
        except (UnsupportedType, ValueError) as exc:
            raise CatalogError(f"Invalid column '{column.name}': {exc}") from None


def _columns_sql(columns: Sequence[Column]) -> str:
    return ",\n    ".join(column.sql() for column in columns)


def _create_table_sql(ref: str, columns: Sequence[Column], engine: EngineSpec) -> str:
    return f"CREATE TABLE {ref} (\n    {_columns_sql(columns)}\n) {engine_sql(engine, list(columns))}"


def cluster_of(backend: Backend) -> Cluster | None:
    """The backend's cluster when it runs in cluster mode, else None."""
    topology = getattr(backend, "topology", None)
    return topology if isinstance(topology, Cluster) else None


def _create_table(
    catalog: Catalog, workspace: Workspace, table: str, statement: str, columns: Sequence[Column], engine: EngineSpec
) -> None:
    # LowCardinality over numbers/dates and wide FixedString are valid
    # Tinybird types the engine calls "suspicious" by default.
    cluster = cluster_of(catalog.backend)
    if cluster is None:
        catalog.backend.command(statement, settings=REQUIRED_CREATE_SETTINGS)
        return
    # The Distributed table declares the same columns (defaults included, so it
    # computes them for omitted fields as the local table would) without
    # codecs, which only mean something where the data is stored. MATERIALIZED
    # columns become ALIAS there: a Distributed table forwards the MATERIALIZED
    # values it computed, which a shard on the same server refuses (18.16);
    # as ALIAS they are left to each shard to compute and store, and reading
    # one recomputes the same expression from the stored columns (equal for
    # deterministic expressions; ``now()`` reads as query time).
    distributed_columns = [
        msgspec.structs.replace(
            column, codec=None, default_kind="ALIAS" if column.default_kind == "MATERIALIZED" else column.default_kind
        )
        for column in columns
    ]
    cluster.create_table(
        workspace.database,
        table,
        lambda ref: _create_table_sql(ref, columns, engine),
        _columns_sql(distributed_columns),
        REQUIRED_CREATE_SETTINGS,
    )


def _drop_table(catalog: Catalog, workspace: Workspace, table: str) -> None:
    cluster = cluster_of(catalog.backend)
    if cluster is None:
        catalog.backend.command(f"DROP TABLE IF EXISTS {table_ref(workspace, table)}")
    else:
        cluster.drop_table(workspace.database, table)


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
    _check_ingestible(columns)
    _check_types_supported(catalog.backend.capabilities, columns)
    with catalog.lock:
        if catalog.find_datasource(workspace.id, name) is not None:
            raise CatalogError(f"There is already a Data Source with name '{name}'")
        existing = catalog.workspace_datasources(workspace.id)
        if max_per_workspace and len(existing) >= max_per_workspace:
            raise CatalogError(f"Data Source limit reached ({max_per_workspace})")
        quarantine_name = f"{name}_quarantine"
        main_ref = table_ref(workspace, name)
        quarantine_ref = table_ref(workspace, quarantine_name)
        try:
            # Render both statements before running either: a bad expression
            # is refused here and nothing reaches the engine.
            capabilities = catalog.backend.capabilities
            q_columns = quarantine_columns(list(columns))
            q_engine = quarantine_engine(list(columns))
            main_engine = _with_dedup_window(engine, capabilities)
            q_engine = _with_dedup_window(q_engine, capabilities)
            statements = [
                (name, _create_table_sql(main_ref, columns, main_engine), list(columns), main_engine),
                (quarantine_name, _create_table_sql(quarantine_ref, q_columns, q_engine), q_columns, q_engine),
            ]
        except ValueError as exc:
            raise CatalogError(str(exc)) from None
        created: list[str] = []
        try:
            for table, statement, table_columns, table_engine in statements:
                _create_table(catalog, workspace, table, statement, table_columns, table_engine)
                created.append(table)
        except BackendError as exc:
            for table in created:
                _drop_table(catalog, workspace, table)
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


def drop_datasource(catalog: Catalog, workspace: Workspace, datasource: DataSource, *, force: bool = False) -> None:
    """Drop the tables and the record. A data source that a materialized view reads
    or writes is refused (409, SPEC §10.1) unless ``force``: then those pipes are
    dropped first (their views; other targets keep their rows)."""
    from birdhouse.catalog.pipes import drop_pipe, pipes_using  # pipes imports this module

    with catalog.lock:
        dependents = pipes_using(catalog, workspace, datasource)
        if dependents and not force:
            names = ", ".join(p.name for p in dependents)
            raise CatalogError(
                f"Data Source '{datasource.name}' is used by the materialized views of pipe(s) {names}: "
                "drop them first, or use force=true to drop them with it",
                409,
            )
        for pipe in dependents:
            drop_pipe(catalog, workspace, pipe)
        _drop_table(catalog, workspace, datasource.quarantine_name)
        _drop_table(catalog, workspace, datasource.name)
        catalog.forget_datasource(datasource)


def truncate_table(catalog: Catalog, workspace: Workspace, table: str) -> None:
    cluster = cluster_of(catalog.backend)
    if cluster is None:
        catalog.backend.command(f"TRUNCATE TABLE IF EXISTS {table_ref(workspace, table)}")
    else:
        cluster.truncate_table(workspace.database, table)


@dataclasses.dataclass(frozen=True)
class TableStats:
    row_count: int
    bytes: int


def table_stats(catalog: Catalog, workspace: Workspace, table: str) -> TableStats:
    cluster = cluster_of(catalog.backend)
    if cluster is not None:
        # Summed over the local tables of every shard (the Distributed table has no parts).
        validate_identifier(table)
        return TableStats(*cluster.table_stats(workspace.database, table))
    return _parts_stats(catalog, workspace, table).get(table, TableStats(0, 0))


def workspace_table_stats(catalog: Catalog, workspace: Workspace, tables: Sequence[str]) -> dict[str, TableStats]:
    """Stats of many tables of one workspace: one query, not one per table
    (GET /v0/datasources lists them all)."""
    if cluster_of(catalog.backend) is not None:
        return {table: table_stats(catalog, workspace, table) for table in tables}
    found = _parts_stats(catalog, workspace, None)
    return {table: found.get(table, TableStats(0, 0)) for table in tables}


def _parts_stats(catalog: Catalog, workspace: Workspace, table: str | None) -> dict[str, TableStats]:
    """Active parts summed per table of the workspace database (only ``table`` if given)."""
    select = (
        "SELECT table AS t, toUInt64(sum(rows)) AS r, toUInt64(sum(bytes_on_disk)) AS b "
        "FROM system.parts WHERE active AND "
    )
    group = " GROUP BY table"
    if catalog.backend.capabilities.query_params:
        where = "database = {db:String}" + (" AND table = {t:String}" if table is not None else "")
        params = {"db": workspace.database, **({"t": table} if table is not None else {})}
        result = catalog.backend.query(select + where + group, "JSONEachRow", params=params)
    else:
        # Both names passed validate_identifier ([A-Za-z0-9_]): they cannot leave the quotes.
        where = f"database = '{validate_identifier(workspace.database)}'"
        if table is not None:
            where += f" AND table = '{validate_identifier(table)}'"
        result = catalog.backend.query(select + where + group, "JSONEachRow")
    stats: dict[str, TableStats] = {}
    for line in result.body.splitlines():
        row = msgspec.json.decode(line)
        stats[row["t"]] = TableStats(int(row["r"]), int(row["b"]))
    return stats
