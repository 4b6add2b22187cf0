"""Appends outside /v0/events: /v1/datasources/<ds>/append + jobs, and
POST /v0/datasources with data (SPEC §10.1, §10.3)."""

from __future__ import annotations

import gzip
import time
from typing import Any

from tests.http.conftest import Local

SCHEMA = "a Int32 `json:$.a`, s String `json:$.s`"


def sql(local: Local, q: str) -> Any:
    return local.client.get("/v0/sql", params={"q": q}, headers=local.auth()).json()["data"]


def test_v1_append_returns_a_job_that_completes(local: Local) -> None:
    local.create_datasource("events", SCHEMA)
    body = b'{"a": 1, "s": "x"}\n{"a": 2, "s": "y"}\n{"a": "bad", "s": "z"}\n'
    response = local.client.post(
        "/v1/datasources/events/append?format=ndjson&token=" + local.admin,
        content=gzip.compress(body),
        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert isinstance(job["id"], str) and job["id"] == job["import_id"] == job["job_id"]
    assert job["kind"] == "import" and job["status"] in ("waiting", "done")
    assert job["datasource"]["name"] == "events"
    assert job["job_url"].endswith(f"/v0/jobs/{job['id']}")
    deadline = time.monotonic() + 10
    status = job["status"]
    while status != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
        polled = local.client.get(f"/v0/jobs/{job['id']}?debug=blocks,block_log", headers=local.auth()).json()
        status = polled["status"]
    assert status == "done"
    assert polled["blocks"][0]["process_return"][0]["lines"] == 2
    assert polled["blocks"][0]["process_return"][0]["quarantine"] == 1
    assert polled["quarantine_rows"] == 1 and "error" not in polled
    assert sql(local, "SELECT count() c FROM events") == [{"c": 2}]
    # Quarantine rows of an import carry its id (SPEC §6).
    assert sql(local, "SELECT c__import_id FROM events_quarantine") == [{"c__import_id": job["id"]}]
    listed = local.client.get("/v0/jobs?kind=import", headers=local.auth()).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    cancel = local.client.post(f"/v0/jobs/{job['id']}/cancel", headers=local.auth())
    assert cancel.status_code == 400 and "cannot be cancelled" in cancel.json()["error"]
    assert local.client.get("/v0/jobs/nope", headers=local.auth()).status_code == 404


def test_v1_append_csv_and_scopes(local: Local) -> None:
    local.create_datasource("plain", "a Int32, s String, n Nullable(Float64)")
    reader = local.create_token("reader", "DATASOURCES:READ:plain")
    denied = local.client.post(
        "/v1/datasources/plain/append?format=csv", content=b"1,x,2.5\n", headers=local.auth(reader)
    )
    assert denied.status_code == 403
    csv = b"a,s,n\n1,x,2.5\n2,,\n3,z,not a number\n"
    response = local.client.post("/v1/datasources/plain/append?format=csv", content=csv, headers=local.auth())
    assert response.status_code == 200
    local.drain()
    assert sql(local, "SELECT a, s, n FROM plain ORDER BY a") == [
        {"a": 1, "s": "x", "n": 2.5},
        {"a": 2, "s": "", "n": None},
    ]
    assert local.client.post("/v1/datasources/missing/append", content=b"", headers=local.auth()).status_code == 404
    assert (
        local.client.post("/v1/datasources/plain/append?format=parquet", content=b"", headers=local.auth()).status_code
        == 400
    )


def test_datasources_api_append_multipart_like_tb_cli(local: Local) -> None:
    local.create_datasource("events", SCHEMA)
    files = {"ndjson": ("events.ndjson", b'{"a": 1, "s": "x"}\n{"a": 2, "s": "y"}\n', "application/octet-stream")}
    response = local.client.post(
        "/v0/datasources?name=events&mode=append&format=ndjson&debug=blocks_block_log",
        files=files,
        headers=local.auth(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["datasource"]["name"] == "events"
    assert body["successful_rows"] == 2 and body["quarantined_rows"] == 0 and body["error"] is False
    assert body["blocks"][0]["process_return"][0] == {
        "lines": 2,
        "quarantine": 0,
        "invalid_lines": 0,
        "empty_lines": 0,
        "bytes": 38,
        "parser": "python",
    }
    # Synchronous: the rows are there when the answer comes.
    assert sql(local, "SELECT count() c FROM events") == [{"c": 2}]
    assert body["datasource"]["statistics"]["row_count"] == 2


def test_create_from_ndjson_infers_the_schema_and_from_csv_with_a_schema(local: Local) -> None:
    inferred = local.client.post(
        "/v0/datasources?name=inferred&format=ndjson",
        content=b'{"store_id": 1, "name": "a"}\n{"store_id": 2, "name": "b"}\n',
        headers={**local.auth(), "Content-Type": "application/x-ndjson"},
    )
    assert inferred.status_code == 200, inferred.text
    assert inferred.json()["successful_rows"] == 2
    columns = [c["name"] for c in inferred.json()["datasource"]["columns"]]
    assert columns == ["name", "store_id"]
    from_csv = local.client.post(
        "/v0/datasources",
        data={"name": "from_csv", "schema": "id Int32, label String", "format": "csv"},
        files={"csv": ("x.csv", b"1,one\n2,two\n", "text/csv")},
        headers=local.auth(),
    )
    assert from_csv.status_code == 200, from_csv.text
    assert sql(local, "SELECT id, label FROM from_csv ORDER BY id") == [
        {"id": 1, "label": "one"},
        {"id": 2, "label": "two"},
    ]
    no_schema = local.client.post(
        "/v0/datasources?name=nope&format=csv", content=b"1,2\n", headers={**local.auth(), "Content-Type": "text/csv"}
    )
    assert no_schema.status_code == 400 and "schema" in no_schema.json()["error"]
    replace = local.client.post("/v0/datasources?name=from_csv&mode=replace", headers=local.auth())
    assert replace.status_code == 400
