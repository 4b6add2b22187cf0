"""Materialized views (SPEC §8.4): a `.pipe` TYPE MATERIALIZED node is an engine MV into a deployed data source."""

from __future__ import annotations

import json
from pathlib import Path

from birdhouse.backends import Backend
from birdhouse.pipeline.deliver import deliver_segment
from birdhouse.pipeline.records import AcceptedBatch, encode_batch
from tests.apps import Local
from tests.pipes.conftest import create_pipe, post_events, sql

SOURCE = "id String `json:$.id`, kind String `json:$.kind`, amount Int64 `json:$.amount`"
TOTALS = "kind String, n UInt64, total Int64"
TOTALS_PIPE = """
DESCRIPTION >
    Totals per kind

NODE per_kind
SQL >
    SELECT kind, count() AS n, sum(amount) AS total FROM events GROUP BY kind
TYPE MATERIALIZED
DATASOURCE totals
"""
AGG_PIPE = """
NODE agg
SQL >
    SELECT kind, countState() AS c, uniqState(id) AS u, sumSimpleState(amount) AS s
    FROM events GROUP BY kind
TYPE MATERIALIZED
DATASOURCE agg_totals
"""


def event(i: int, kind: str | None = None) -> str:
    return json.dumps({"id": f"e{i}", "kind": kind or ("a" if i % 3 else "b"), "amount": i})


def setup_totals(app: Local) -> None:
    app.create_datasource("events", SOURCE)
    app.create_datasource("totals", TOTALS, engine="SummingMergeTree", engine_sorting_key="kind")
    response = create_pipe(app, "totals_mv", TOTALS_PIPE)
    assert response.status_code == 200, response.text


def test_counts_in_target_match_source_after_many_appends(app: Local) -> None:
    setup_totals(app)
    for batch in range(20):
        post_events(app, "events", [event(batch * 10 + i) for i in range(10)])
    source = sql(app, "SELECT kind, count() AS n, sum(amount) AS total FROM events GROUP BY kind ORDER BY kind")
    target = sql(app, "SELECT kind, sum(n) AS n, sum(total) AS total FROM totals GROUP BY kind ORDER BY kind")
    assert target == source
    assert sum(int(row["n"]) for row in target) == 200


def test_mv_does_not_backfill_existing_rows(app: Local) -> None:
    app.create_datasource("events", SOURCE)
    app.create_datasource("totals", TOTALS, engine="SummingMergeTree", engine_sorting_key="kind")
    post_events(app, "events", [event(1), event(2)])
    assert create_pipe(app, "totals_mv", TOTALS_PIPE).status_code == 200
    post_events(app, "events", [event(3)])
    assert sql(app, "SELECT sum(n) AS n FROM totals") == [{"n": 1}]


def test_replaying_a_delivered_segment_does_not_double_the_target(app: Local) -> None:
    setup_totals(app)
    ws = app.runtime.default_workspace()
    assert ws is not None
    ds = app.runtime.catalog.find_datasource(ws.id, "events")
    assert ds is not None
    batches = [
        AcceptedBatch(
            f"req{i}",
            ws.id,
            ds.id,
            ("id", "kind", "amount"),
            "".join(json.dumps({"id": f"{i}{j}", "kind": "a", "amount": j}) + "\n" for j in range(4)).encode(),
            b"",
            4,
            0,
        )
        for i in range(3)
    ]
    payloads = [encode_batch(b) for b in batches]
    backend: Backend = app.runtime.backend
    for _ in range(3):  # a crash after the inserts but before the segment was deleted, twice
        deliver_segment(backend, app.runtime.catalog, payloads, Path("/nonexistent"))
    assert sql(app, "SELECT count() AS n FROM events") == [{"n": 12}]
    assert sql(app, "SELECT sum(n) AS n, sum(total) AS total FROM totals") == [{"n": 12, "total": 18}]


def test_aggregating_target_with_state_functions(app: Local) -> None:
    app.create_datasource("events", SOURCE)
    app.create_datasource(
        "agg_totals",
        "kind String, c AggregateFunction(count), u AggregateFunction(uniq, String), "
        "s SimpleAggregateFunction(sum, Int64)",
        engine="AggregatingMergeTree",
        engine_sorting_key="kind",
    )
    response = create_pipe(app, "agg_mv", AGG_PIPE)
    assert response.status_code == 200, response.text
    for batch in range(5):
        post_events(app, "events", [event(batch * 7 + i) for i in range(7)])
    post_events(app, "events", [event(0)])  # a repeated id: counted, not unique
    merged = sql(
        app,
        "SELECT kind, countMerge(c) AS n, uniqMerge(u) AS ids, sum(s) AS total FROM agg_totals "
        "GROUP BY kind ORDER BY kind",
    )
    direct = sql(
        app,
        "SELECT kind, count() AS n, uniq(id) AS ids, sum(amount) AS total FROM events GROUP BY kind ORDER BY kind",
    )
    assert merged == direct
    assert sum(int(r["n"]) for r in merged) == 36
    # The target is not JSON-typed: /v0/events refuses it (E7), it is only fed by the view.
    refused = app.client.post("/v0/events?name=agg_totals", content=b"{}", headers=app.auth())
    assert refused.status_code == 400
    assert refused.text == "Data Source must be of type JSON\n"


def mv_pipe(select: str, target: str = "totals") -> str:
    return f"NODE n\nSQL >\n    {select}\nTYPE MATERIALIZED\nDATASOURCE {target}\n"


def test_select_columns_must_match_the_target(app: Local) -> None:
    app.create_datasource("events", SOURCE)
    app.create_datasource("totals", TOTALS, engine="SummingMergeTree", engine_sorting_key="kind")
    extra = create_pipe(
        app, "p", mv_pipe("SELECT kind, count() AS n, sum(amount) AS total, 1 AS surplus FROM events GROUP BY kind")
    )
    assert extra.status_code == 400
    assert "surplus" in extra.json()["error"] and "target lacks" in extra.json()["error"]
    missing = create_pipe(app, "p", mv_pipe("SELECT kind, count() AS n FROM events GROUP BY kind"))
    assert missing.status_code == 400
    assert "total" in missing.json()["error"] and "missing" in missing.json()["error"]
    app.create_datasource(
        "agg", "kind String, c AggregateFunction(count)", engine="AggregatingMergeTree", engine_sorting_key="kind"
    )
    plain = create_pipe(app, "p", mv_pipe("SELECT kind, count() AS c FROM events GROUP BY kind", "agg"))
    assert plain.status_code == 400
    assert "countState" in plain.json()["error"]
    # Nothing was left behind by the refusals.
    assert app.client.get("/v0/pipes", headers=app.auth()).json()["pipes"] == []
    assert sql(app, "SELECT 1 AS one") == [{"one": 1}]


def test_target_must_be_a_deployed_data_source(app: Local) -> None:
    app.create_datasource("events", SOURCE)
    response = create_pipe(app, "p", mv_pipe("SELECT kind FROM events", "nowhere"))
    assert response.status_code == 400
    assert "nowhere" in response.json()["error"] and "deployed" in response.json()["error"]


def test_mv_select_goes_through_the_sql_guard(app: Local) -> None:
    app.create_datasource("events", SOURCE)
    app.create_datasource("totals", TOTALS, engine="SummingMergeTree", engine_sorting_key="kind")
    attempts = {
        "SELECT name AS kind, 0 AS n, 0 AS total FROM system.tables": "another database",
        "SELECT kind, 0 AS n, 0 AS total FROM birdhouse.objects": "another database",
        "SELECT 'x' AS kind, 0 AS n, 0 AS total FROM file('/etc/passwd', 'LineAsString')": "table function",
        "SELECT kind, 0 AS n, 0 AS total FROM missing_ds": "not found",
        "INSERT INTO totals SELECT kind, 0, 0 FROM events": "Only SELECT",
    }
    for select, why in attempts.items():
        response = create_pipe(app, "p", mv_pipe(select))
        assert response.status_code in (400, 403), (select, response.text)
        assert why in response.json()["error"], (select, response.text)
    assert app.client.get("/v0/pipes", headers=app.auth()).json()["pipes"] == []


def test_delete_datasource_with_mv_needs_force(app: Local) -> None:
    setup_totals(app)
    for name in ("events", "totals"):
        refused = app.client.delete(f"/v0/datasources/{name}", headers=app.auth())
        assert refused.status_code == 409, refused.text
        assert "totals_mv" in refused.json()["error"]
    forced = app.client.delete("/v0/datasources/events?force=true", headers=app.auth())
    assert forced.status_code == 204
    # The pipe went with it; the target (not read by any view now) can be dropped plainly.
    assert app.client.get("/v0/pipes/totals_mv", headers=app.auth()).status_code == 404
    assert app.client.delete("/v0/datasources/totals", headers=app.auth()).status_code == 204


def test_delete_pipe_stops_the_view_and_replace_swaps_it(app: Local) -> None:
    setup_totals(app)
    post_events(app, "events", [event(1, "a")])
    doubled = TOTALS_PIPE.replace("sum(amount) AS total", "sum(amount * 2) AS total")
    assert create_pipe(app, "totals_mv", doubled).status_code == 409  # exists: needs force
    replaced = create_pipe(app, "totals_mv", doubled, force="true")
    assert replaced.status_code == 200, replaced.text
    post_events(app, "events", [event(10, "a")])
    assert sql(app, "SELECT sum(n) AS n, sum(total) AS total FROM totals") == [{"n": 2, "total": 21}]
    assert app.client.delete("/v0/pipes/totals_mv", headers=app.auth()).status_code == 204
    post_events(app, "events", [event(100, "a")])
    assert sql(app, "SELECT sum(n) AS n FROM totals") == [{"n": 2}]  # no view any more
    assert app.client.delete("/v0/datasources/events", headers=app.auth()).status_code == 204


def test_materialized_node_can_use_an_earlier_node(app: Local) -> None:
    app.create_datasource("events", SOURCE)
    app.create_datasource("totals", TOTALS, engine="SummingMergeTree", engine_sorting_key="kind")
    datafile = """
NODE big
SQL >
    SELECT kind, amount FROM events WHERE amount >= 10

NODE per_kind
SQL >
    SELECT kind, count() AS n, sum(amount) AS total FROM big GROUP BY kind
TYPE MATERIALIZED
DATASOURCE totals
"""
    response = create_pipe(app, "big_mv", datafile)
    assert response.status_code == 200, response.text
    post_events(app, "events", [event(i, "a") for i in range(20)])
    assert sql(app, "SELECT sum(n) AS n, sum(total) AS total FROM totals") == [{"n": 10, "total": 145}]
