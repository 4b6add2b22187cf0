"""The real ClickHouse server: what only the HTTP backend does, and the whole
app (create a data source, send events with wait=true, read them back through
/v0/sql) running on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from birdhouse.app import create_app
from birdhouse.backends import open_backend
from birdhouse.backends.clickhouse import ClickhouseBackend
from birdhouse.config import load_settings


@pytest.fixture
def server(clickhouse_server: str) -> Iterator[ClickhouseBackend]:
    backend = open_backend(clickhouse_server)
    assert isinstance(backend, ClickhouseBackend)
    try:
        yield backend
    finally:
        backend.close()


def test_the_server_really_sends_200_before_the_exception(server: ClickhouseBackend) -> None:
    # Proves test_error_after_the_first_block_is_raised covers the case it claims.
    response = httpx.post(
        str(server._client.base_url),
        params={"max_block_size": "1000", "send_progress_in_http_headers": "0"},
        content=b"SELECT throwIf(number = 3000000) FROM system.numbers LIMIT 4000000 FORMAT TSV",
        timeout=60,
    )
    assert response.status_code == 200
    assert response.content.rstrip().rsplit(b"\n", 1)[-1].startswith(b"Code: 395")


def test_token_ledger_records_delivered_tokens(server: ClickhouseBackend) -> None:
    if not server.capabilities.token_ledger:
        pytest.skip(f"{server.capabilities.version} deduplicates tokens itself; no ledger")
    db = f"ledger_{uuid.uuid4().hex[:12]}"
    server.command(f"CREATE DATABASE `{db}`")
    try:
        server.command(f"CREATE TABLE `{db}`.`t` (a UInt8) ENGINE = MergeTree ORDER BY a")
        settings: dict[str, str | int] = {"insert_deduplication_token": "tok-1"}
        assert server.insert(f"`{db}`.`t`", b'{"a":1}\n', settings=settings) == 1
        assert server.insert(f"`{db}`.`t`", b'{"a":1}\n', settings=settings) == 0  # skipped replay
        ledger = server.query(f"SELECT token FROM {server.ledger_table} WHERE table = '{db}.t'", "TSV").body
        assert ledger == b"tok-1\n"
    finally:
        server.command(f"DROP DATABASE IF EXISTS `{db}`")


def test_the_whole_app_on_clickhouse(
    server: ClickhouseBackend, clickhouse_server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    caps = server.capabilities
    catalog_db = f"bh_{uuid.uuid4().hex[:12]}"
    settings = load_settings(
        environ={},
        overrides={
            "server.data_dir": str(tmp_path / "data"),
            "storage.dsn": clickhouse_server,
            "storage.catalog_database": catalog_db,
        },
    )
    client = TestClient(create_app(settings, local_mode=True))
    entered = False
    try:
        client.__enter__()
        entered = True
        admin = {"Authorization": f"Bearer {client.get('/tokens').json()['workspace_admin_token']}"}
        schema = "id UInt32 `json:$.id`, name String `json:$.name`, ts DateTime `json:$.ts`"
        created = client.post("/v0/datasources", headers=admin, data={"name": "ev", "schema": schema})
        assert created.status_code == 200, created.text
        events = b'{"id":1,"name":"a","ts":"2024-01-01 00:00:00"}\n{"id":2,"name":"b","ts":"2024-01-01 00:00:01"}\n'
        sent = client.post("/v0/events", params={"name": "ev", "wait": "true"}, headers=admin, content=events)
        assert sent.status_code == 200, sent.text
        assert sent.json() == {"successful_rows": 2, "quarantined_rows": 0}
        read = client.get("/v0/sql", params={"q": "SELECT id, name FROM ev ORDER BY id FORMAT JSON"}, headers=admin)
        if caps.explain_ast:
            assert read.status_code == 200, read.text
            assert read.json()["data"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
        else:
            # The guard needs the server's own parser; old servers get a clear refusal.
            assert read.status_code == 501, read.text
            assert caps.version in read.json()["error"]
        if not caps.map_type:
            refused = client.post(
                "/v0/datasources", headers=admin, data={"name": "m", "schema": "m Map(String, String) `json:$.m`"}
            )
            assert refused.status_code == 400
            assert "Map" in refused.json()["error"] and caps.version in refused.json()["error"]
        listed = client.get("/v0/datasources/ev", headers=admin)
        assert listed.status_code == 200, listed.text
        assert listed.json()["statistics"]["row_count"] == 2
    finally:
        if entered:
            client.__exit__(None, None, None)
        server.command(f"DROP DATABASE IF EXISTS `{catalog_db}`")
