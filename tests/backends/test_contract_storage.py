"""Contract: DDL, inserts, dedup replay, truncate/drop/delete, MVs, catalog."""

from __future__ import annotations

import json

import pytest

from birdhouse.backends import BackendError
from birdhouse.catalog.catalog import Catalog
from birdhouse.catalog.datasources import create_datasource, drop_datasource, truncate_table
from birdhouse.catalog.models import DataSource, Token, Workspace
from birdhouse.catalog.store import CatalogStore
from birdhouse.catalog.tokens import Scope
from birdhouse.pipeline.deliver import INSERT_SETTINGS
from birdhouse.schema.columns import parse_schema
from birdhouse.schema.engine import EngineSpec, default_engine
from birdhouse.schema.types import REQUIRED_CREATE_SETTINGS
from tests.backends.conftest import Target

ROWS = b'{"id":1,"name":"a"}\n{"id":2,"name":"b"}\n{"id":3,"name":"c"}\n'


def _count(target: Target, table: str) -> int:
    return int(target.backend.query(f"SELECT count() FROM {target.table(table)}", "TSVRaw").body)


def _window(target: Target) -> str:
    # What birdhouse.catalog.datasources adds to every MergeTree it creates.
    return " SETTINGS non_replicated_deduplication_window = 1000" if target.caps.dedup_window else ""


def _create(target: Target, table: str = "events") -> str:
    ref = target.table(table)
    target.backend.command(
        f"CREATE TABLE {ref} (id UInt32, name String) ENGINE = MergeTree ORDER BY id{_window(target)}"
    )
    return ref


def test_ddl_settings_are_statement_settings_not_table_settings(target: Target) -> None:
    ref = target.table("odd")
    target.backend.command(
        f"CREATE TABLE {ref} (n LowCardinality(UInt32), d LowCardinality(Date), f FixedString(300)) "
        "ENGINE = MergeTree ORDER BY tuple()",
        settings=REQUIRED_CREATE_SETTINGS,
    )
    shown = target.backend.query(f"SHOW CREATE TABLE {ref}", "TSVRaw").body.decode()
    assert "LowCardinality(UInt32)" in shown and "FixedString(300)" in shown
    assert "allow_suspicious" not in shown


def test_insert_reports_rows_and_columns_subset(target: Target) -> None:
    ref = _create(target)
    assert target.backend.insert(ref, b'{"id":7}\n', "JSONEachRow", columns=("id",)) == 1
    assert target.backend.insert(ref, ROWS, "JSONEachRow") == 3
    body = target.backend.query(f"SELECT id, name FROM {ref} ORDER BY id", "JSONEachRow").body
    assert [tuple(json.loads(line).values()) for line in body.splitlines()] == [(1, "a"), (2, "b"), (3, "c"), (7, "")]


def test_insert_error_has_a_code(target: Target) -> None:
    ref = _create(target)
    with pytest.raises(BackendError) as excinfo:
        target.backend.insert(ref, b'{"id":"not a number"}\n', "JSONEachRow")
    assert excinfo.value.code is not None
    assert _count(target, "events") == 0


def test_token_replay_inserts_once(target: Target) -> None:
    ref = _create(target)
    settings = {**INSERT_SETTINGS, "insert_deduplication_token": "segment-1"}
    target.backend.insert(ref, ROWS, "JSONEachRow", settings=settings)
    target.backend.insert(ref, ROWS, "JSONEachRow", settings=settings)
    assert _count(target, "events") == 3
    # Another token is another block, even with identical bytes.
    target.backend.insert(ref, ROWS, "JSONEachRow", settings={**settings, "insert_deduplication_token": "segment-2"})
    assert _count(target, "events") == 6
    # Tokens are per table, as the engine's dedup window is.
    other = _create(target, "other")
    target.backend.insert(other, ROWS, "JSONEachRow", settings=settings)
    assert _count(target, "other") == 3


def test_token_replay_does_not_double_materialized_views(target: Target) -> None:
    ref = _create(target)
    totals = target.table("totals")
    # The target needs its own window: dependent-view dedup happens in the target table.
    target.backend.command(f"CREATE TABLE {totals} (n UInt64) ENGINE = MergeTree ORDER BY tuple(){_window(target)}")
    target.backend.command(
        f"CREATE MATERIALIZED VIEW {target.table('mv')} TO {totals} AS SELECT count() AS n FROM {ref}"
    )
    settings = {**INSERT_SETTINGS, "insert_deduplication_token": "segment-1"}
    for _ in range(2):
        target.backend.insert(ref, ROWS, "JSONEachRow", settings=settings)
    assert target.backend.query(f"SELECT sum(n) FROM {totals}", "TSVRaw").body == b"3\n"


def test_truncate_and_drop(target: Target) -> None:
    ref = _create(target)
    target.backend.insert(ref, ROWS, "JSONEachRow")
    target.backend.command(f"TRUNCATE TABLE IF EXISTS {ref}")
    assert _count(target, "events") == 0
    target.backend.command(f"TRUNCATE TABLE IF EXISTS {target.table('missing')}")
    target.backend.command(f"DROP TABLE IF EXISTS {ref}")
    with pytest.raises(BackendError) as excinfo:
        target.backend.query(f"SELECT * FROM {ref}")
    assert excinfo.value.code == 60


def test_lightweight_delete(target: Target) -> None:
    target.gap(not target.caps.lightweight_delete, "no lightweight DELETE FROM")
    ref = _create(target)
    target.backend.insert(ref, ROWS, "JSONEachRow")
    target.backend.command(f"DELETE FROM {ref} WHERE id = 2")
    body = target.backend.query(f"SELECT id FROM {ref} ORDER BY id", "TSVRaw").body
    assert body == b"1\n3\n"


def test_catalog_store_round_trip(target: Target) -> None:
    store = CatalogStore(target.backend, target.db)
    store.ensure_schema()
    store.ensure_schema()  # idempotent: every node runs it at start
    workspace = Workspace(id="w1", name="ws", database="w_1")
    token = Token(id="t1", workspace_id="w1", name="admin", token="p.secret", scopes=[Scope("ADMIN")])
    columns = parse_schema("id UInt32 `json:$.id`, name String `json:$.name`")
    datasource = DataSource(id="d1", workspace_id="w1", name="events", columns=columns, engine=default_engine(columns))
    for record in (workspace, token, datasource):
        store.save(record)
    assert {type(r).__name__: r for r in store.load()} == {
        "Workspace": workspace,
        "Token": token,
        "DataSource": datasource,
    }
    renamed = Token(id="t1", workspace_id="w1", name="renamed", token="p.secret", scopes=[Scope("ADMIN")])
    store.save(renamed)
    store.delete(datasource)
    assert list(store.load()) == [workspace, renamed]


def test_data_source_lifecycle_through_the_catalog(target: Target) -> None:
    # datasources.py adds non_replicated_deduplication_window where the server has it;
    # elsewhere replays are deduplicated by the backend's delivered-token ledger.
    catalog = Catalog(target.backend, b"s" * 32, "local", target.db)
    catalog.open()
    workspace = catalog.create_workspace("contract", "u1", "u@example.com")
    try:
        columns = parse_schema("id UInt32 `json:$.id`, name LowCardinality(String) `json:$.name`")
        datasource = create_datasource(catalog, workspace, "events", columns, EngineSpec(sorting_key="id"))
        table = f"`{workspace.database}`.`events`"
        target.backend.insert(table, ROWS, "JSONEachRow", columns=("id", "name"), settings=INSERT_SETTINGS)
        quarantine = f"`{workspace.database}`.`events_quarantine`"
        target.backend.insert(quarantine, b'{"id":"x","c__error_column":["id"],"c__error":["bad"]}\n', "JSONEachRow")
        assert target.backend.query(f"SELECT count() FROM {quarantine}", "TSVRaw").body == b"1\n"
        truncate_table(catalog, workspace, "events")
        assert target.backend.query(f"SELECT count() FROM {table}", "TSVRaw").body == b"0\n"
        drop_datasource(catalog, workspace, datasource)
        assert catalog.find_datasource(workspace.id, "events") is None
    finally:
        catalog.delete_workspace(workspace)


def test_omitted_keys_get_their_default_expression(target: Target) -> None:
    # The converter leaves out keys whose DEFAULT the engine must evaluate.
    target.gap(not target.caps.insert_defaults, "omitted JSONEachRow keys get zero values, not their DEFAULT")
    ref = target.table("defaults")
    target.backend.command(
        f"CREATE TABLE {ref} (id UInt32, at DateTime DEFAULT toDateTime('2024-01-02 03:04:05'), "
        "next UInt32 DEFAULT id + 1) ENGINE = MergeTree ORDER BY id"
    )
    # Both shapes the pipeline sends: a column list naming the omitted keys
    # (landing rows), and no column list at all (quarantine rows).
    target.backend.insert(ref, b'{"id":5}\n{"id":6,"next":1}\n', "JSONEachRow", columns=("id", "at", "next"))
    target.backend.insert(ref, b'{"id":7}\n', "JSONEachRow")
    body = target.backend.query(f"SELECT id, at, next FROM {ref} ORDER BY id", "TSV").body
    assert body == b"5\t2024-01-02 03:04:05\t6\n6\t2024-01-02 03:04:05\t1\n7\t2024-01-02 03:04:05\t8\n"
