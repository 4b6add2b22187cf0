"""Two birdhouse nodes on one ClickHouse server share workspaces, tokens and
data sources through the catalog (issue: scale-out)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from birdhouse.app import create_app
from birdhouse.backends import open_backend
from birdhouse.config import load_settings


@pytest.fixture
def nodes(clickhouse_server: str, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    server = open_backend(clickhouse_server)
    catalog_db = f"bh_{uuid.uuid4().hex[:12]}"
    clients = []
    for name in ("a", "b"):
        settings = load_settings(
            environ={},
            overrides={
                "server.data_dir": str(tmp_path / name),
                "storage.dsn": clickhouse_server,
                "storage.catalog_database": catalog_db,
                "storage.catalog_refresh_s": 0.2,
            },
        )
        client = TestClient(create_app(settings, local_mode=True))
        client.__enter__()
        clients.append(client)
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            client.__exit__(None, None, None)
        for database in server.query("SHOW DATABASES", "TSV").body.decode().split():
            if database == catalog_db or database.startswith("w_"):
                server.command(f"DROP DATABASE IF EXISTS `{database}`")
        server.close()


def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_nodes_share_workspaces_tokens_and_datasources(nodes: tuple[TestClient, TestClient]) -> None:
    a, b = nodes
    tokens_a, tokens_b = a.get("/tokens").json(), b.get("/tokens").json()
    assert tokens_a == tokens_b, "both nodes serve the same default workspace and tokens"
    admin = {"Authorization": f"Bearer {tokens_a['workspace_admin_token']}"}
    created = a.post("/v0/datasources", headers=admin, data={"name": "shared", "schema": "i UInt32 `json:$.i`"})
    assert created.status_code == 200, created.text
    # A token minted on A works on B at once (an unknown well-signed token triggers a reload).
    minted = a.post("/v0/tokens", headers=admin, params={"name": "app", "scope": "DATASOURCES:APPEND:shared"}).json()
    app_auth = {"Authorization": f"Bearer {minted['token']}"}
    sent = b.post("/v0/events?name=shared&wait=true", headers=app_auth, content=b'{"i":1}\n{"i":2}')
    assert sent.status_code == 200, sent.text
    # Rows written through B are counted on A.
    stats = eventually(lambda: a.get("/v0/datasources/shared", headers=admin).json()["statistics"]["row_count"] == 2)
    assert stats
    # Revoking on A stops the token on B within the refresh interval.
    assert a.delete("/v0/tokens/app", headers=admin).status_code == 204
    refused = eventually(
        lambda: b.post("/v0/events?name=shared", headers=app_auth, content=b'{"i":3}').status_code == 403
    )
    assert refused
