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
        "SELECT kind, countMerge(c) AS n, uniqMerge(u) AS ids, sum(s) AS total FROM agg_totals GROUP BY kind ORDER BY kind",
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
