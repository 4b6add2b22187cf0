"""Data Sources API (SPEC §10.1) over real chDB."""

from __future__ import annotations

import pytest

from tests.http.conftest import Local

SCHEMA = (
    "`timestamp` DateTime64(3) `json:$.timestamp`, "
    "`city` LowCardinality(String) `json:$.city`, "
    "`n` Nullable(Int64) `json:$.n`, "
    "`tags` Array(String) `json:$.tags[:]` DEFAULT [], "
    "`attrs` Map(String, String) `json:$.attrs`, "
    "`flag` Bool `json:$.flag` DEFAULT false"
)

DS_KEYS = {
    "id",
    "name",
    "type",
    "created_at",
    "updated_at",
    "description",
    "engine",
    "engine_sorting_key",
    "engine_partition_key",
    "schema",
    "columns",
    "statistics",
    "tags",
    "used_by",
    "headers",
    "indexes",
    "shared_with",
    "version",
    "replicated",
    "cluster",
    "project",
    "new_columns_detected",
    "errors_discarded_at",
}


def test_create_returns_the_shape_clients_parse(local: Local) -> None:
    created = local.create_datasource("events", SCHEMA, description="web events")
    assert set(created) == DS_KEYS
    assert str(created["id"]).startswith("t_") and len(str(created["id"])) == 34
    assert created["type"] == "ndjson"
    assert created["description"] == "web events"
    columns = created["columns"]
    assert isinstance(columns, list)
    assert [c["name"] for c in columns] == ["timestamp", "city", "n", "tags", "attrs", "flag"]
    assert columns[2]["nullable"] is True and columns[2]["type"] == "Nullable(Int64)"
    assert columns[3]["jsonpath"] == "$.tags[:]" and columns[3]["default_value"] == "DEFAULT []"
    engine = created["engine"]
    assert isinstance(engine, dict)
    assert engine["engine"] == "MergeTree"
    assert engine["partition_key"] == "toYear(timestamp)"
    assert created["engine_sorting_key"] == engine["sorting_key"]
    assert created["statistics"] == {"bytes": 0, "row_count": 0}


def test_create_with_engine_parameters(local: Local) -> None:
    created = local.create_datasource(
        "versions",
        "id String `json:$.id`, v UInt64 `json:$.v`, ts DateTime `json:$.ts`",
        engine="ReplacingMergeTree",
        engine_sorting_key="id",
        engine_partition_key="toYYYYMM(ts)",
        engine_ttl="ts + toIntervalDay(30)",
        engine_ver="v",
        engine_settings="index_granularity = 4096",
    )
    engine = created["engine"]
    assert isinstance(engine, dict)
    assert engine["engine"] == "ReplacingMergeTree"
    assert "ReplacingMergeTree(`v`)" in str(engine["engine_full"])
    assert engine["ttl"] == "ts + toIntervalDay(30)"
    # The table really has that engine.
    ws = local.runtime.default_workspace()
    assert ws is not None
    body = local.runtime.backend.query(
        "SELECT engine_full FROM system.tables WHERE database = {d:String} AND name = 'versions'",
        "TSVRaw",
        params={"d": ws.database},
    ).body.decode()
    assert "ReplacingMergeTree(v)" in body and "index_granularity = 4096" in body


def test_quarantine_table_is_created_with_spec_shape(local: Local) -> None:
    local.create_datasource("events", "insertion_date DateTime `json:$.d`, a Int32 `json:$.a`")
    ws = local.runtime.default_workspace()
    assert ws is not None
    body = local.runtime.backend.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'events_quarantine' "
        "ORDER BY position",
        "TSVRaw",
        params={"d": ws.database},
    ).body.decode()
    rows = [line.split("\t") for line in body.strip().splitlines()]
    assert rows == [
        ["insertion_date", "Nullable(String)"],
        ["a", "Nullable(String)"],
        ["c__error_column", "Array(String)"],
        ["c__error", "Array(String)"],
        ["c__import_id", "Nullable(String)"],
        ["c__insertion_date", "DateTime"],
    ]
    # Never listed as a data source of its own.
    names = [d["name"] for d in local.client.get("/v0/datasources", headers=local.auth()).json()["datasources"]]
    assert names == ["events"]


def test_get_by_name_and_id_and_datafile(local: Local) -> None:
    created = local.create_datasource("events", SCHEMA, description="two\nlines")
    by_id = local.client.get(f"/v0/datasources/{created['id']}", headers=local.auth()).json()
    assert by_id["name"] == "events"
    text = local.client.get("/v0/datasources/events.datasource", headers=local.auth())
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    assert "SCHEMA >" in text.text and "`json:$.tags[:]`" in text.text
    from birdhouse.schema.datafile import parse_datasource_file

    parsed = parse_datasource_file(text.text)
    assert [c.name for c in parsed.columns] == ["timestamp", "city", "n", "tags", "attrs", "flag"]
    assert parsed.description == "two\nlines"
    missing = local.client.get("/v0/datasources/nope", headers=local.auth())
    assert missing.status_code == 404 and missing.json() == {"error": "Data Source 'nope' not found"}


def test_name_clash_and_invalid_schema(local: Local) -> None:
    local.create_datasource("events", SCHEMA)
    clash = local.client.post("/v0/datasources", headers=local.auth(), data={"name": "events", "schema": SCHEMA})
    assert clash.status_code == 400
    assert clash.json() == {"error": "There is already a Data Source with name 'events'"}
    for schema, fragment in [
        ("a Int32 `json:$.a`, a String `json:$.b`", "a"),
        ("a Nonsense(3) `json:$.a`", "Nonsense"),
        ("a Int32 `json:a`", "JSONPath"),
        ("a Int32 `json:$.a[:][:]`", "Nested arrays"),
        ("a Int32 `json:$.a`, b String", "b"),
    ]:
        response = local.client.post("/v0/datasources", headers=local.auth(), data={"name": "bad", "schema": schema})
        assert response.status_code == 400, schema
        assert fragment in response.json()["error"], (schema, response.json())
    assert local.client.get("/v0/datasources/bad", headers=local.auth()).status_code == 404


@pytest.mark.parametrize(
    "name",
    ["a;DROP TABLE x", "a`b", "a'b", 'a"b', "system.tables", "1abc", "a b", "x" * 256, "events_quarantine", ""],
)
def test_name_injection_is_refused(local: Local, name: str) -> None:
    response = local.client.post(
        "/v0/datasources", headers=local.auth(), data={"name": name, "schema": "a Int32 `json:$.a`"}
    )
    assert response.status_code == 400
    assert "error" in response.json()
    # Nothing was created anywhere.
    assert local.client.get("/v0/datasources", headers=local.auth()).json() == {"datasources": []}


@pytest.mark.parametrize(
    "extra",
    [
        {"engine_sorting_key": "a) ; DROP DATABASE birdhouse; --"},
        {"engine_partition_key": "(SELECT 1)"},
        {"engine_ttl": "a + 1; DROP TABLE x"},
        {"engine_settings": "index_granularity = (SELECT 1)"},
        {"engine": "File(CSV, '/etc/passwd')"},
    ],
)
def test_engine_expression_injection_is_refused(local: Local, extra: dict[str, str]) -> None:
    response = local.client.post(
        "/v0/datasources", headers=local.auth(), data={"name": "inj", "schema": "a Int32 `json:$.a`", **extra}
    )
    assert response.status_code == 400, response.text
    assert local.client.get("/v0/datasources/inj", headers=local.auth()).status_code == 404


def test_default_expression_injection_is_refused(local: Local) -> None:
    schema = "a Int32 `json:$.a`, b String DEFAULT '' ) ENGINE = Log; DROP TABLE x --"
    response = local.client.post("/v0/datasources", headers=local.auth(), data={"name": "inj", "schema": schema})
    assert response.status_code == 400


def test_truncate_and_delete(local: Local) -> None:
    local.create_datasource("events", "a Int32 `json:$.a`")
    ws = local.runtime.default_workspace()
    assert ws is not None
    local.runtime.backend.insert(f"`{ws.database}`.`events`", b'{"a":1}\n{"a":2}\n')
    stats = local.client.get("/v0/datasources/events", headers=local.auth()).json()["statistics"]
    assert stats["row_count"] == 2 and stats["bytes"] > 0
    truncated = local.client.post("/v0/datasources/events/truncate", headers=local.auth())
    assert truncated.status_code == 200 and truncated.json() == {}
    assert local.client.get("/v0/datasources/events", headers=local.auth()).json()["statistics"]["row_count"] == 0
    token = local.create_token("reader", "DATASOURCES:READ:events")
    assert local.client.delete("/v0/datasources/events", headers=local.auth(token)).status_code == 403
    assert local.client.delete("/v0/datasources/events", headers=local.auth()).status_code == 204
    assert local.client.get("/v0/datasources/events", headers=local.auth()).status_code == 404
    tables = local.runtime.backend.query(
        "SELECT name FROM system.tables WHERE database = {d:String}", "TSVRaw", params={"d": ws.database}
    ).body.decode()
    assert tables.strip() == ""
    # The reader token lost its scope on the dropped data source.
    reader = local.client.get("/v0/tokens/reader", headers=local.auth()).json()
    assert reader["scopes"] == []


def test_scopes_per_operation(local: Local) -> None:
    local.create_datasource("events", "a Int32 `json:$.a`")
    local.create_datasource("other", "a Int32 `json:$.a`")
    appender = local.create_token("appender", "DATASOURCES:APPEND:events")
    creator = local.create_token("creator", "DATASOURCES:CREATE")
    dropper = local.create_token("dropper", "DATASOURCES:DROP:other")
    # Listing never 403s; it shows what the token holds a scope on.
    listed = local.client.get("/v0/datasources", headers=local.auth(appender))
    assert listed.status_code == 200
    assert [d["name"] for d in listed.json()["datasources"]] == ["events"]
    assert local.client.get("/v0/datasources/other", headers=local.auth(appender)).status_code == 404
    # Create: CREATE or ADMIN only.
    data = {"name": "new_ds", "schema": "a Int32 `json:$.a`"}
    assert local.client.post("/v0/datasources", headers=local.auth(appender), data=data).status_code == 403
    assert local.client.post("/v0/datasources", headers=local.auth(creator), data=data).status_code == 200
    # Truncate needs CREATE/ADMIN.
    assert local.client.post("/v0/datasources/events/truncate", headers=local.auth(appender)).status_code == 403
    assert local.client.post("/v0/datasources/events/truncate", headers=local.auth(creator)).status_code == 200
    # Drop needs DROP on that data source.
    assert local.client.delete("/v0/datasources/events", headers=local.auth(dropper)).status_code == 404
    assert local.client.delete("/v0/datasources/other", headers=local.auth(dropper)).status_code == 204


def test_list_reports_each_data_source_its_own_statistics(local: Local) -> None:
    """GET /v0/datasources reads every table's stats in one query; each data
    source still gets its own numbers (quarantine rows are not counted)."""
    for name in ("one", "two", "empty"):
        local.create_datasource(name, "a Int32 `json:$.a`")
    for name, body in (("one", b'{"a":1}\n{"a":2}\n{"a":3}'), ("two", b'{"a":1}\n{"a":"bad"}')):
        response = local.client.post(f"/v0/events?name={name}&wait=true", content=body, headers=local.auth())
        assert response.status_code == 200, response.text
    listed = local.client.get("/v0/datasources", headers=local.auth()).json()["datasources"]
    counts = {d["name"]: d["statistics"]["row_count"] for d in listed}
    assert counts == {"one": 3, "two": 1, "empty": 0}
    assert all(d["statistics"]["bytes"] > 0 for d in listed if d["name"] != "empty")
    single = local.client.get("/v0/datasources/one", headers=local.auth()).json()["statistics"]
    assert single["row_count"] == 3
