"""Fixtures for pipe tests: the app with the pipes routes (until app.py registers them)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route

from birdhouse.http import pipes as pipes_module
from tests.apps import Local

# The backend contract fixtures (chDB and a ClickHouse server), for tests that run on both.
from tests.backends.conftest import clickhouse_server, target  # noqa: F401


def with_pipes(local: Local) -> Local:
    routes = local.client.app.router.routes  # type: ignore[attr-defined]
    if not any(isinstance(r, Route) and r.path == "/v0/pipes/{name}" for r in routes):
        routes.extend(pipes_module.routes)
    return local


@pytest.fixture
def app(local: Local) -> Local:
    return with_pipes(local)


def create_pipe(local: Local, name: str, datafile: str, token: str | None = None, **params: str) -> Any:
    """POST a pipe datafile as the raw body; returns the response."""
    return local.client.post(
        "/v0/pipes", params={"name": name, **params}, content=datafile.encode(), headers=local.auth(token)
    )


def sql(local: Local, query: str, token: str | None = None) -> Any:
    response = local.client.get("/v0/sql", params={"q": query}, headers=local.auth(token))
    assert response.status_code == 200, response.text
    return response.json()["data"]


def post_events(local: Local, name: str, lines: list[str], token: str | None = None) -> Any:
    body = "\n".join(lines).encode()
    response = local.client.post(f"/v0/events?name={name}&wait=true", content=body, headers=local.auth(token))
    assert response.status_code == 200, response.text
    return response.json()
