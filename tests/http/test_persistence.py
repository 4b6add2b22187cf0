"""Restarting keeps workspaces, tokens, data sources and rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.http.conftest import Local


def test_restart_keeps_everything(make_local: Callable[..., Local], tmp_path: Path) -> None:
    first = make_local(tmp_path / "d")
    first.create_datasource("events", "a Int32 `json:$.a`", description="kept")
    token = first.create_token("tracker", "DATASOURCES:APPEND:events")
    ws = first.runtime.default_workspace()
    assert ws is not None
    first.runtime.backend.insert(f"`{ws.database}`.`events`", b'{"a":41}\n')
    other = first.client.post("/v1/workspaces", params={"name": "second"}, headers=first.auth(first.user)).json()

    second = make_local(tmp_path / "d")
    assert second.admin == first.admin and second.user == first.user
    described = second.client.get("/v0/datasources/events", headers=second.auth()).json()
    assert described["description"] == "kept"
    assert described["statistics"]["row_count"] == 1
    assert second.client.get("/v0/datasources", headers=second.auth(token)).status_code == 200
    listed = second.client.get("/v1/user/workspaces", headers=second.auth(second.user)).json()["workspaces"]
    assert {w["name"] for w in listed} == {"Tinybird_Local_Testing", "second"}
    assert second.client.get("/v0/datasources", headers=second.auth(other["token"])).status_code == 200
