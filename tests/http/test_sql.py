"""Query API (SPEC §10.2) through HTTP: sources of SQL, formats, scopes, escapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.http.conftest import Local

ROWS = b'{"a": 1, "s": "x"}\n{"a": 2, "s": "y"}\n{"a": 3, "s": "z"}\n'


@pytest.fixture
def filled(local: Local) -> Local:
    local.create_datasource("events", "a Int32 `json:$.a`, s String `json:$.s`")
    local.create_datasource("secret", "b Int32 `json:$.b`")
    response = local.client.post("/v0/events?name=events&wait=true", content=ROWS, headers=local.auth())
    assert response.json() == {"successful_rows": 3, "quarantined_rows": 0}
    return local


def sql(local: Local, q: str, token: str | None = None, **params: str) -> Any:
    return local.client.get("/v0/sql", params={"q": q, **params}, headers=local.auth(token))


def test_default_format_is_json_with_meta_data_rows_statistics(filled: Local) -> None:
    response = sql(filled, "SELECT a, s FROM events ORDER BY a LIMIT 2")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["meta"] == [{"name": "a", "type": "Int32"}, {"name": "s", "type": "String"}]
    assert body["data"] == [{"a": 1, "s": "x"}, {"a": 2, "s": "y"}]
    assert body["rows"] == 2
    assert body["rows_before_limit_at_least"] == 3
    assert set(body["statistics"]) == {"elapsed", "rows_read", "bytes_read"}


@pytest.mark.parametrize(
    ("fmt", "content_type", "expected"),
    [
        ("CSV", "text/csv", '1,"x"\n'),
        ("CSVWithNames", "text/csv", '"a","s"\n1,"x"\n'),
        ("TSV", "text/plain", "1\tx\n"),
        ("TabSeparated", "text/plain", "1\tx\n"),
        ("JSONEachRow", "application/x-ndjson", '{"a":1,"s":"x"}\n'),
    ],
)
def test_formats_and_content_types(filled: Local, fmt: str, content_type: str, expected: str) -> None:
    response = sql(filled, f"SELECT a, s FROM events ORDER BY a LIMIT 1 FORMAT {fmt}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.text == expected


def test_parquet(filled: Local, tmp_path: Path) -> None:
    response = sql(filled, "SELECT a FROM events ORDER BY a FORMAT Parquet")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content[:4] == b"PAR1"
    # The engine reads the file back to the same values.
    path = tmp_path / "out.parquet"
    path.write_bytes(response.content)
    back = filled.runtime.backend.query(f"SELECT a FROM file('{path}', Parquet) ORDER BY a", "TSVRaw")
    assert back.body == b"1\n2\n3\n"


def test_sql_sources_post_raw_form_and_query(filled: Local) -> None:
    q = "SELECT count() AS c FROM events"
    raw = filled.client.post("/v0/sql", content=q, headers={**filled.auth(), "Content-Type": "text/plain"})
    assert raw.json()["data"] == [{"c": 3}]
    no_type = filled.client.post("/v0/sql", content=q, headers=filled.auth())
    assert no_type.json()["data"] == [{"c": 3}]
    form = filled.client.post("/v0/sql", data={"q": q}, headers=filled.auth())
    assert form.json()["data"] == [{"c": 3}]
    # curl --data "SELECT …": form content type without a q key → the raw body.
    curl = filled.client.post(
        "/v0/sql", content=q, headers={**filled.auth(), "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert curl.json()["data"] == [{"c": 3}]
    # Query string wins over the body.
    both = filled.client.post("/v0/sql?q=SELECT+7+AS+c", data={"q": q}, headers=filled.auth())
    assert both.json()["data"] == [{"c": 7}]
    assert filled.client.get("/v0/sql", headers=filled.auth()).status_code == 400


def test_quoted_64bit_integers_passthrough(filled: Local) -> None:
    plain = sql(filled, "SELECT toUInt64(18446744073709551615) AS big").json()["data"]
    quoted = sql(
        filled, "SELECT toUInt64(18446744073709551615) AS big", output_format_json_quote_64bit_integers="1"
    ).json()["data"]
    assert plain == [{"big": 18446744073709551615}]
    assert quoted == [{"big": "18446744073709551615"}]


def test_quarantine_is_queryable_by_name(filled: Local) -> None:
    filled.client.post("/v0/events?name=events&wait=true", content=b"nope\n", headers=filled.auth())
    body = sql(filled, "SELECT c__error FROM events_quarantine").json()
    assert body["data"] == [{"c__error": ["Line is not a valid JSON: 'nope'"]}]


def test_read_scopes(filled: Local) -> None:
    reader = filled.create_token("reader", "DATASOURCES:READ:events")
    appender = filled.create_token("appender", "DATASOURCES:APPEND:events")
    read_all = filled.create_token("all", "WORKSPACE:READ_ALL")
    assert sql(filled, "SELECT count() c FROM events", reader).json()["data"] == [{"c": 3}]
    assert sql(filled, "SELECT count() c FROM events_quarantine", reader).status_code == 200
    denied = sql(filled, "SELECT count() FROM secret", reader)
    assert denied.status_code == 403 and "secret" in denied.json()["error"]
    joined = sql(filled, "SELECT count() FROM events, secret", reader)
    assert joined.status_code == 403
    assert sql(filled, "SELECT count() FROM events", appender).status_code == 403
    assert sql(filled, "SELECT count() FROM secret", read_all).status_code == 200
    assert sql(filled, "SELECT 1", "garbage").status_code == 403


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')",
        "SELECT * FROM remote('127.0.0.1', system.one)",
        "SELECT * FROM system.tables",
        "SELECT name FROM system.databases",
        "SELECT * FROM birdhouse.objects",
        "SELECT 1 WHERE 1 IN system.one",
        "INSERT INTO events (a, s) VALUES (9, 'w')",
        "SELECT 1; DROP TABLE events",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT * FROM events INTO OUTFILE '/tmp/x.csv'",
        "DROP TABLE events",
        "ALTER TABLE events DELETE WHERE 1",
        "SELECT dictGet('d', 'a', 1)",
        "SYSTEM SHUTDOWN",
    ],
)
def test_escapes_are_refused(filled: Local, query: str) -> None:
    response = sql(filled, query)
    assert response.status_code in (400, 403), response.text
    assert response.json()["error"]
    assert sql(filled, "SELECT count() c FROM events").json()["data"] == [{"c": 3}]


def test_another_workspaces_table_is_unreachable(filled: Local) -> None:
    other = filled.client.post("/v1/workspaces", params={"name": "tenant_b"}, headers=filled.auth(filled.user)).json()
    filled.create_datasource("private", "p Int32 `json:$.p`", token=other["token"])
    ws_b = filled.runtime.catalog.workspace_by_name("tenant_b")
    assert ws_b is not None
    for query in (
        "SELECT * FROM private",
        f"SELECT * FROM {ws_b.database}.private",
        f"SELECT * FROM `{ws_b.database}`.`private`",
    ):
        response = sql(filled, query)
        assert response.status_code in (400, 403), query
    assert sql(filled, "SELECT count() c FROM private", other["token"]).json()["data"] == [{"c": 0}]


def test_engine_errors_are_json_with_code(filled: Local) -> None:
    response = sql(filled, "SELECT nope FROM events")
    assert response.status_code == 400
    assert "nope" in response.json()["error"]
    assert response.headers["x-db-exception-code"] == "47"


def test_result_size_cap_is_a_clear_error(make_local: Any) -> None:
    local = make_local(**{"sql.max_result_bytes": 1000})
    response = sql(local, "SELECT number FROM numbers(100000)")
    assert response.status_code == 400
    assert "Limit for result exceeded" in response.json()["error"]


def test_describe(filled: Local) -> None:
    body = sql(filled, "DESCRIBE TABLE events").json()
    assert [row["name"] for row in body["data"]] == ["a", "s"]


def test_row_filter_scope_limits_every_read_of_the_data_source(filled: Local) -> None:
    """DATASOURCES:READ:<ds>:<filter>: the token sees only the matching rows,
    however the query reaches the table (alias, join, IN, subquery, CTE)."""
    token = filled.create_token("filtered", "DATASOURCES:READ:events:a >= 2 AND s != 'z'")
    assert sql(filled, "SELECT a FROM events ORDER BY a", token).json()["data"] == [{"a": 2}]
    assert sql(filled, "SELECT count() c FROM events AS e WHERE e.a > 0", token).json()["data"] == [{"c": 1}]
    joined = sql(filled, "SELECT x.a FROM events x JOIN events y ON x.a = y.a", token)
    assert joined.json()["data"] == [{"a": 2}], joined.text
    assert sql(filled, "SELECT count() c FROM (SELECT * FROM events)", token).json()["data"] == [{"c": 1}]
    cte = sql(filled, "WITH t AS (SELECT a FROM events) SELECT sum(a) s FROM t", token)
    assert cte.json()["data"] == [{"s": 2}], cte.text
    within = sql(filled, "SELECT number n FROM numbers(4) WHERE n IN (SELECT a FROM events)", token)
    assert within.json()["data"] == [{"n": 2}], within.text
    # The admin token reads everything.
    assert sql(filled, "SELECT count() c FROM events").json()["data"] == [{"c": 3}]


@pytest.mark.parametrize(
    "bad_filter",
    [
        "1) UNION ALL SELECT * FROM events WHERE (1",
        "a IN (SELECT a FROM secret)",
        "1 SETTINGS readonly = 0",
        "a = 1; DROP TABLE events",
        "(a = 1",
        "a = 1)",
    ],
)
def test_row_filters_that_are_not_expressions_are_refused_at_grant(filled: Local, bad_filter: str) -> None:
    response = filled.client.post(
        "/v0/tokens", headers=filled.auth(), params={"name": "x", "scope": f"DATASOURCES:READ:events:{bad_filter}"}
    )
    assert response.status_code == 400, response.text
    assert "filter" in response.json()["error"].lower()


def test_row_filter_cannot_reach_other_tables(filled: Local) -> None:
    """A filter that names another table (no query keywords) is still verified
    with the rewritten query: the token cannot read ``secret`` through it."""
    token = filled.create_token("sneaky", "DATASOURCES:READ:events:a IN secret")
    response = sql(filled, "SELECT a FROM events", token)
    assert response.status_code in (400, 403), response.text
    assert "secret" in response.json()["error"]
