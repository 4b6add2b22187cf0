"""The tinybird.datasources_ops_log service data source: one row per flush, readable by ADMIN tokens only."""

from __future__ import annotations

import time

import msgspec

from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.catalog.opslog import OPS_LOG, create_ops_log, record_flush
from birdhouse.schema.engine import EngineSpec
from tests.apps import Local
from tests.backends.conftest import Target
from tests.pipes.conftest import sql

SCHEMA = "id String `json:$.id`"


def test_rows_visible_to_admin_only(local: Local) -> None:
    local.create_datasource("events", SCHEMA)
    ws = local.runtime.default_workspace()
    assert ws is not None
    ds = local.runtime.catalog.find_datasource(ws.id, "events")
    assert ds is not None
    # Before any flush was logged the log reads empty (created on first read).
    assert sql(local, f"SELECT count() AS n FROM {OPS_LOG}") == [{"n": 0}]
    backend = local.runtime.backend
    assert record_flush(backend, ws, ds, 10, 2, 0.25, None)
    assert record_flush(backend, ws, ds, 0, 0, 0.5, "Code: 60. Unknown table")
    rows = sql(
        local,
        "SELECT event_type, datasource_id, datasource_name, result, elapsed_time, error, rows, rows_quarantine "
        f"FROM {OPS_LOG} ORDER BY timestamp",
    )
    assert rows == [
        {
            "event_type": "append-hfi",
            "datasource_id": ds.id,
            "datasource_name": "events",
            "result": "ok",
            "elapsed_time": 0.25,
            "error": None,
            "rows": 10,
            "rows_quarantine": 2,
        },
        {
            "event_type": "append-hfi",
            "datasource_id": ds.id,
            "datasource_name": "events",
            "result": "error",
            "elapsed_time": 0.5,
            "error": "Code: 60. Unknown table",
            "rows": 0,
            "rows_quarantine": 0,
        },
    ]
    # Quoted spellings resolve to the same table; DESCRIBE works.
    assert sql(local, "SELECT count() AS n FROM `tinybird`.`datasources_ops_log`") == [{"n": 2}]
    described = local.client.get("/v0/sql", params={"q": f"DESCRIBE {OPS_LOG}"}, headers=local.auth())
    assert described.status_code == 200 and "rows_quarantine" in described.text
    # Not ADMIN → 403, even with every read scope.
    for scopes in (("WORKSPACE:READ_ALL",), ("DATASOURCES:READ:events",), ("DATASOURCES:CREATE",)):
        token = local.create_token("t_" + scopes[0].replace(":", "_").lower(), *scopes)
        denied = local.client.get("/v0/sql", params={"q": f"SELECT * FROM {OPS_LOG}"}, headers=local.auth(token))
        assert denied.status_code == 403, denied.text
    # Other tinybird.* names are not service tables: another database, refused.
    other = local.client.get("/v0/sql", params={"q": "SELECT * FROM tinybird.secrets"}, headers=local.auth())
    assert other.status_code == 400 and "another database" in other.json()["error"]


def test_each_workspace_sees_its_own_log(local: Local) -> None:
    local.create_datasource("events", SCHEMA)
    ws = local.runtime.default_workspace()
    assert ws is not None
    ds = local.runtime.catalog.find_datasource(ws.id, "events")
    assert ds is not None
    create_ops_log(local.runtime.backend, ws)
    create_ops_log(local.runtime.backend, ws)  # idempotent
    assert record_flush(local.runtime.backend, ws, ds, 3, 0, 0.1, None)
    created = local.client.post("/v1/workspaces", params={"name": "second"}, headers=local.auth(local.user))
    assert created.status_code == 200, created.text
    second = created.json()["token"]
    assert sql(local, f"SELECT count() AS n FROM {OPS_LOG}", token=second) == [{"n": 0}]
    assert sql(local, f"SELECT sum(rows) AS n FROM {OPS_LOG}") == [{"n": 3}]


def test_ops_log_on_every_backend(target: Target) -> None:
    workspace = Workspace(id="w", name="w", database=target.db)
    datasource = DataSource(id="t_1", workspace_id="w", name="events", columns=[], engine=EngineSpec())
    create_ops_log(target.backend, workspace)
    assert record_flush(target.backend, workspace, datasource, 5, 1, 0.2, None)
    assert record_flush(target.backend, workspace, datasource, 0, 0, 0.1, "boom")
    result = target.backend.query(
        f"SELECT result, rows, rows_quarantine, error FROM {target.table(OPS_LOG)} ORDER BY result DESC",
        "JSONEachRow",
    )
    rows = [msgspec.json.decode(line) for line in result.body.splitlines()]
    assert [(r["result"], int(r["rows"]), int(r["rows_quarantine"]), r["error"]) for r in rows] == [
        ("ok", 5, 1, None),
        ("error", 0, 0, "boom"),
    ]


ENDPOINT = """
NODE top
SQL >
    SELECT id FROM events WHERE id = {{String(wanted, 'x')}} LIMIT {{Int32(n, 10)}}
TYPE ENDPOINT
"""


def test_endpoint_errors_are_logged_for_admins(local: Local) -> None:
    from tests.pipes.conftest import create_pipe

    local.create_datasource("events", SCHEMA)
    assert create_pipe(local, "top_ids", ENDPOINT).status_code == 200
    assert sql(local, "SELECT count() AS n FROM tinybird.endpoint_errors") == [{"n": 0}]
    ok = local.client.get("/v0/pipes/top_ids.json", params={"wanted": "a"}, headers=local.auth())
    assert ok.status_code == 200
    bad = local.client.get("/v0/pipes/top_ids.json", params={"n": "many"}, headers=local.auth())
    assert bad.status_code == 400
    rows = sql(local, "SELECT pipe_name, params, status_code, error FROM tinybird.endpoint_errors")
    assert len(rows) == 1
    assert rows[0]["pipe_name"] == "top_ids" and rows[0]["status_code"] == 400
    assert msgspec.json.decode(rows[0]["params"]) == {"n": "many"}
    assert "n" in rows[0]["error"]
    reader = local.create_token("reader", "DATASOURCES:READ:events")
    denied = local.client.get(
        "/v0/sql", params={"q": "SELECT * FROM tinybird.endpoint_errors"}, headers=local.auth(reader)
    )
    assert denied.status_code == 403


def test_flushes_are_logged_once_the_waiters_are_answered(local: Local) -> None:
    from tests.pipes.conftest import post_events

    local.create_datasource("events", SCHEMA)
    post_events(local, "events", ['{"id": "a"}', '{"id": "b"}', "not json"])
    post_events(local, "events", ['{"id": "c"}'])
    # Written by the flusher after it answered (off the wait=true path): poll briefly.
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = sql(local, f"SELECT result, rows, rows_quarantine FROM {OPS_LOG} ORDER BY timestamp")
        if len(rows) >= 2:
            break
        time.sleep(0.05)
    assert rows == [
        {"result": "ok", "rows": 2, "rows_quarantine": 1},
        {"result": "ok", "rows": 1, "rows_quarantine": 0},
    ]
