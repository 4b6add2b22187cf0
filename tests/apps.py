"""Apps over real chDB in the test's temp dir, driven in-process (fixtures: local, make_local)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from birdhouse.app import create_app
from birdhouse.config import Settings, load_settings
from birdhouse.runtime import Runtime


@dataclass
class Local:
    """A running app plus the tokens `GET /tokens` hands out."""

    client: TestClient
    settings: Settings
    admin: str
    user_admin: str
    user: str

    @property
    def runtime(self) -> Runtime:
        found: Runtime = self.client.app.state.runtime  # type: ignore[attr-defined]
        return found

    def drain(self) -> None:
        """Deliver every accepted row to the backend (202 means WAL, not table)."""
        portal = self.client.portal
        assert portal is not None
        assert portal.call(self.runtime.flusher.drain)

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin}"}

    def create_datasource(self, name: str, schema: str, token: str | None = None, **extra: str) -> dict[str, object]:
        response = self.client.post(
            "/v0/datasources", headers=self.auth(token), data={"name": name, "schema": schema, **extra}
        )
        assert response.status_code == 200, response.text
        created: dict[str, object] = response.json()["datasource"]
        return created

    def create_token(self, name: str, *scopes: str) -> str:
        response = self.client.post("/v0/tokens", headers=self.auth(), params={"name": name, "scope": list(scopes)})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token


def start_local(data_dir: Path, local_mode: bool = True, **overrides: Any) -> tuple[TestClient, Settings]:
    settings = load_settings(environ={}, overrides={"server.data_dir": str(data_dir), **overrides})
    client = TestClient(create_app(settings, local_mode=local_mode))
    client.__enter__()
    return client, settings


@pytest.fixture
def make_local(tmp_path: Path) -> Iterator[Callable[..., Local]]:
    """Start (and on exit stop) apps; only one may run at a time (chDB)."""
    running: list[TestClient] = []

    def make(data_dir: Path | None = None, **overrides: Any) -> Local:
        for client in running:
            client.__exit__(None, None, None)
        running.clear()
        client, settings = start_local(data_dir or tmp_path / "data", **overrides)
        running.append(client)
        tokens = client.get("/tokens").json()
        return Local(client, settings, tokens["workspace_admin_token"], tokens["admin_token"], tokens["user_token"])

    yield make
    for client in running:
        client.__exit__(None, None, None)


@pytest.fixture
def local(make_local: Callable[..., Local]) -> Local:
    return make_local()
