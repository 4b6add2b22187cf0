"""Endpoint pipes: GET /v0/pipes/<name>.json with {{Type(name, default)}} parameters bound, never spliced."""

from __future__ import annotations

import json

import pytest

from tests.apps import Local
from tests.pipes.conftest import create_pipe, post_events, sql

SCHEMA = "id String `json:$.id`, kind String `json:$.kind`, amount Int64 `json:$.amount`"
TOP = """
TOKEN "top_reader" READ

NODE filtered
DESCRIPTION >
    Rows of one kind above a threshold
SQL >
    %
    SELECT id, kind, amount FROM events
    WHERE kind = {{String(kind, 'a')}} AND amount >= {{Int32(min_amount, 0)}}

NODE endpoint
SQL >
    %
    SELECT id, amount FROM filtered ORDER BY amount DESC LIMIT {{UInt16(limit, 3)}}
TYPE ENDPOINT
"""
ROWS = [{"id": f"e{i}", "kind": "a" if i % 2 else "b", "amount": i} for i in range(10)]


@pytest.fixture
def top(app: Local) -> Local:
    app.create_datasource("events", SCHEMA)
    post_events(app, "events", [json.dumps(r) for r in ROWS])
    response = create_pipe(app, "top", TOP)
    assert response.status_code == 200, response.text
    return app


def get(local: Local, path: str, token: str | None = None, **params: str) -> object:
    return local.client.get(path, params=params, headers=local.auth(token))


def test_defaults_and_query_api_shape(top: Local) -> None:
    response = top.client.get("/v0/pipes/top.json", headers=top.auth())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["meta"] == [{"name": "id", "type": "String"}, {"name": "amount", "type": "Int64"}]
    assert [row["id"] for row in body["data"]] == ["e9", "e7", "e5"]
    assert body["rows"] == 3
    assert set(body["statistics"]) >= {"elapsed", "rows_read", "bytes_read"}


def test_typed_parameters(top: Local) -> None:
    response = top.client.get(
        "/v0/pipes/top.json", params={"kind": "b", "min_amount": "4", "limit": "10"}, headers=top.auth()
    )
    assert response.status_code == 200, response.text
    assert [row["id"] for row in response.json()["data"]] == ["e8", "e6", "e4"]
    # Unknown parameters are ignored (SPEC §1.2).
    ignored = top.client.get("/v0/pipes/top.json", params={"nope": "1", "from": "ts-sdk"}, headers=top.auth())
    assert ignored.status_code == 200 and ignored.json()["rows"] == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [("min_amount", "abc"), ("min_amount", "1; DROP TABLE events"), ("min_amount", "1.5"), ("limit", "-1"),
     ("limit", "70000")],
)  # fmt: skip
def test_bad_values_are_400_naming_the_parameter(top: Local, name: str, value: str) -> None:
    response = top.client.get("/v0/pipes/top.json", params={name: value}, headers=top.auth())
    assert response.status_code == 400
    assert f"'{name}'" in response.json()["error"]
    assert sql(top, "SELECT count() AS n FROM events") == [{"n": 10}]


@pytest.mark.parametrize(
    "value",
    ["' OR 1=1 --", "a' OR '1'='1", "a'; DROP TABLE events; --", "\\' OR 1=1", "{kind:String}", "a\\"],
)
def test_injection_attempts_are_bound_as_values(top: Local, value: str) -> None:
    response = top.client.get("/v0/pipes/top.json", params={"kind": value, "limit": "100"}, headers=top.auth())
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []  # no kind equals the text: nothing leaks
    assert sql(top, "SELECT count() AS n FROM events") == [{"n": 10}]


def test_string_value_round_trips_exactly(app: Local) -> None:
    app.create_datasource("events", SCHEMA)
    tricky = "it's -- \\ ; {x:String} 'quoted'\ttab\nline\\n\x00end"
    post_events(app, "events", [json.dumps({"id": tricky, "kind": "k", "amount": 1})])
    datafile = "NODE e\nSQL >\n    SELECT id FROM events WHERE id = {{String(q)}}\nTYPE ENDPOINT\n"
    assert create_pipe(app, "echo", datafile).status_code == 200
    response = app.client.get("/v0/pipes/echo.json", params={"q": tricky}, headers=app.auth())
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [{"id": tricky}]


def test_missing_required_parameter(app: Local) -> None:
    app.create_datasource("events", SCHEMA)
    datafile = (
        "NODE e\nSQL >\n    SELECT count() AS n FROM events\n"
        "    WHERE amount > {{Int64(above)}} AND toDate('2024-01-02') > {{Date(day, '2024-01-01')}}\nTYPE ENDPOINT\n"
    )
    assert create_pipe(app, "req", datafile).status_code == 200
    missing = app.client.get("/v0/pipes/req.json", headers=app.auth())
    assert missing.status_code == 400
    assert "'above'" in missing.json()["error"] and "required" in missing.json()["error"]
    ok = app.client.get("/v0/pipes/req.json", params={"above": "-1"}, headers=app.auth())
    assert ok.status_code == 200 and ok.json()["data"] == [{"n": 0}]
    bad_date = app.client.get("/v0/pipes/req.json", params={"above": "1", "day": "yesterday"}, headers=app.auth())
    assert bad_date.status_code == 400 and "day" in bad_date.json()["error"]


def test_csv_and_ndjson(top: Local) -> None:
    csv = top.client.get("/v0/pipes/top.csv", params={"limit": "2"}, headers=top.auth())
    assert csv.status_code == 200 and csv.headers["content-type"] == "text/csv"
    assert csv.text.splitlines() == ['"id","amount"', '"e9",9', '"e7",7']
    ndjson = top.client.get("/v0/pipes/top.ndjson", params={"limit": "1"}, headers=top.auth())
    assert ndjson.status_code == 200 and ndjson.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in ndjson.text.splitlines()] == [{"id": "e9", "amount": "9"}] or [
        json.loads(line) for line in ndjson.text.splitlines()
    ] == [{"id": "e9", "amount": 9}]


def test_scopes(top: Local) -> None:
    tokens = {t["name"]: t for t in top.client.get("/v0/tokens", headers=top.auth()).json()["tokens"]}
    reader = tokens["top_reader"]
    assert reader["scopes"] == [{"type": "PIPES:READ", "resource": "top"}]
    assert top.client.get("/v0/pipes/top.json", headers=top.auth(reader["token"])).status_code == 200
    # The pipe token reads through the pipe only, not the data source directly.
    direct = top.client.get("/v0/sql", params={"q": "SELECT * FROM events"}, headers=top.auth(reader["token"]))
    assert direct.status_code == 403
    # A token for another pipe is denied.
    assert create_pipe(top, "other", "NODE o\nSQL >\n    SELECT 1 AS one\nTYPE ENDPOINT\n").status_code == 200
    other = top.create_token("other_reader", "PIPES:READ:other")
    denied = top.client.get("/v0/pipes/top.json", headers=top.auth(other))
    assert denied.status_code == 403
    assert top.client.get("/v0/pipes/other.json", headers=top.auth(other)).json()["data"] == [{"one": 1}]
    # A token that may read every data source the pipe reads may call it too.
    ds_reader = top.create_token("ds_reader", "DATASOURCES:READ:events")
    assert top.client.get("/v0/pipes/top.json", headers=top.auth(ds_reader)).status_code == 200
    # Listing shows only what the token holds a scope on; never 403.
    listed = top.client.get("/v0/pipes", headers=top.auth(other)).json()["pipes"]
    assert [p["name"] for p in listed] == ["other"]
    assert top.client.get("/v0/pipes/top", headers=top.auth(other)).status_code == 404
    # Unknown token → 403; unknown pipe → 404.
    assert top.client.get("/v0/pipes/top.json", headers=top.auth("p.nope")).status_code == 403
    assert top.client.get("/v0/pipes/nope.json", headers=top.auth()).status_code == 404
    # Creating and dropping need PIPES:CREATE / PIPES:DROP.
    assert create_pipe(top, "x", "NODE o\nSQL >\n    SELECT 1\n", token=other).status_code == 403
    assert top.client.delete("/v0/pipes/other", headers=top.auth(other)).status_code == 403
    dropper = top.create_token("dropper", "PIPES:DROP:other")
    assert top.client.delete("/v0/pipes/other", headers=top.auth(dropper)).status_code == 204
    # The dropped pipe's scopes went with it.
    after = {t["name"]: t for t in top.client.get("/v0/tokens", headers=top.auth()).json()["tokens"]}
    assert after["other_reader"]["scopes"] == []


def test_scope_granted_before_the_pipe_exists_binds_to_it(app: Local) -> None:
    early = app.create_token("early", "PIPES:READ:later")
    assert create_pipe(app, "later", "NODE o\nSQL >\n    SELECT 2 AS two\nTYPE ENDPOINT\n").status_code == 200
    response = app.client.get("/v0/pipes/later.json", headers=app.auth(early))
    assert response.status_code == 200 and response.json()["data"] == [{"two": 2}]
    pipe_id = app.client.get("/v0/pipes/later", headers=app.auth()).json()["id"]
    token = app.runtime.catalog.find_token(app.runtime.default_workspace().id, "early")  # type: ignore[union-attr]
    assert token is not None and [s.resource for s in token.scopes] == [pipe_id]


def test_endpoint_sql_goes_through_the_guard(app: Local) -> None:
    app.create_datasource("events", SCHEMA)
    for select in (
        "SELECT * FROM system.tables",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM events; DROP TABLE events",
        "SELECT * FROM url('http://example.com', 'LineAsString')",
        "SELECT * FROM {t:Identifier}",
    ):
        response = create_pipe(app, "bad", f"NODE n\nSQL >\n    {select}\nTYPE ENDPOINT\n")
        assert response.status_code == 400, (select, response.text)
    assert app.client.get("/v0/pipes", headers=app.auth()).json()["pipes"] == []


def test_pipe_json_and_datafile(top: Local) -> None:
    body = top.client.get("/v0/pipes/top", headers=top.auth()).json()
    assert body["name"] == "top" and body["type"] == "endpoint" and body["endpoint"] == "endpoint"
    assert body["url"].endswith("/v0/pipes/top.json")
    assert [n["name"] for n in body["nodes"]] == ["filtered", "endpoint"]
    assert body["params"] == [
        {"name": "kind", "type": "String", "default": "a", "required": False},
        {"name": "min_amount", "type": "Int32", "default": "0", "required": False},
        {"name": "limit", "type": "UInt16", "default": "3", "required": False},
    ]
    source = top.client.get("/v0/pipes/top.pipe", headers=top.auth())
    assert source.status_code == 200 and source.text == TOP
    # Form field `datafile` works as well as the raw body.
    form = top.client.post(
        "/v0/pipes", data={"name": "top2", "datafile": TOP.replace("top_reader", "r2")}, headers=top.auth()
    )
    assert form.status_code == 200, form.text
    assert top.client.get("/v0/pipes/top2.json", headers=top.auth()).json()["rows"] == 3


def test_pipe_read_filter_limits_the_endpoint_rows(top: Local) -> None:
    """PIPES:READ:<pipe>:<filter> filters what the endpoint returns."""
    token = top.create_token("top_small", "PIPES:READ:top:amount < 5")
    response = top.client.get("/v0/pipes/top.json", params={"limit": "10"}, headers=top.auth(token))
    assert response.status_code == 200, response.text
    assert [row["id"] for row in response.json()["data"]] == ["e3", "e1"]


def test_datasource_read_filter_applies_inside_pipes(top: Local) -> None:
    """A token reading the data source through a row filter runs the pipe over
    the filtered rows only."""
    token = top.create_token("top_ds", "DATASOURCES:READ:events:amount <= 5")
    response = top.client.get("/v0/pipes/top.json", params={"limit": "10"}, headers=top.auth(token))
    assert response.status_code == 200, response.text
    assert [row["id"] for row in response.json()["data"]] == ["e5", "e3", "e1"]
