"""ClickHouse goes down under load: events keep being accepted into the WAL
(202), wait=true falls back to 202 (never a false 200), and when the server
returns the backlog drains by itself with every accepted row stored once."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from birdhouse.app import create_app
from birdhouse.config import load_settings
from tests.server import free_port

ROOT = Path(__file__).resolve().parents[2]


class Clickhouse:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "CLICKHOUSE_DATA_DIR": str(self.data), "CLICKHOUSE_HTTP_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [str(ROOT / "scripts" / "clickhouse"), "serve"], stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == str(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(60)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None


@pytest.fixture
def outage_server(tmp_path: Path) -> Iterator[Clickhouse]:
    if os.environ.get("BIRDHOUSE_SKIP_CLICKHOUSE") == "1":
        pytest.skip("BIRDHOUSE_SKIP_CLICKHOUSE=1")
    server = Clickhouse(tmp_path / "clickhouse")
    server.start()
    yield server
    server.stop()


def test_outage_accepts_into_the_wal_and_drains_once(outage_server: Clickhouse, tmp_path: Path) -> None:
    dsn = f"clickhouse://default@127.0.0.1:{outage_server.port}/?timeout_s=3&connect_timeout_s=1"
    settings = load_settings(
        environ={},
        overrides={
            "server.data_dir": str(tmp_path / "node"),
            "storage.dsn": dsn,
            "events.wait_timeout_ms": 1500,
            "flush.retry_initial_ms": 50,
            "flush.retry_max_ms": 200,
        },
    )
    client = TestClient(create_app(settings, local_mode=True))
    client.__enter__()
    try:
        admin = {"Authorization": f"Bearer {client.get('/tokens').json()['workspace_admin_token']}"}
        created = client.post("/v0/datasources", headers=admin, data={"name": "ev", "schema": "i UInt32 `json:$.i`"})
        assert created.status_code == 200, created.text
        ok = client.post("/v0/events?name=ev&wait=true", headers=admin, content=b'{"i": 0}')
        assert ok.status_code == 200

        outage_server.stop()
        accepted = 1
        for batch in range(1, 21):
            body = "\n".join(json.dumps({"i": batch * 100 + j}) for j in range(10)).encode()
            response = client.post("/v0/events?name=ev", headers=admin, content=body)
            assert response.status_code == 202, response.text
            accepted += 10
        waited = client.post("/v0/events?name=ev&wait=true", headers=admin, content=b'{"i": 9999}')
        assert waited.status_code == 202, "the database is down: never a false 200"
        accepted += 1
        assert client.get("/metrics").text.count('birdhouse_backend_errors_total{kind="transient"}') == 1

        outage_server.start()
        deadline = time.monotonic() + 60
        stats: dict[str, int] = {}
        while time.monotonic() < deadline:
            response = client.get("/v0/datasources/ev", headers=admin)
            if response.status_code == 200:
                stats = response.json()["statistics"]
                if stats["row_count"] >= accepted:
                    break
            time.sleep(0.2)
        assert stats.get("row_count") == accepted, "every accepted row arrives exactly once after the outage"
        time.sleep(0.5)
        assert client.get("/v0/datasources/ev", headers=admin).json()["statistics"]["row_count"] == accepted
    finally:
        client.__exit__(None, None, None)
