"""Tinybird Local compatibility endpoints (SPEC §10.4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.http.conftest import Local


def test_tokens_endpoint_hands_out_three_working_tokens(local: Local) -> None:
    body = local.client.get("/tokens").json()
    assert set(body) == {"user_token", "admin_token", "workspace_admin_token"}
    for key in ("admin_token", "workspace_admin_token"):
        response = local.client.get("/v0/datasources", headers=local.auth(body[key]))
        assert response.status_code == 200, key
        assert response.json() == {"datasources": []}


def test_health_ping_and_regions(local: Local) -> None:
    assert local.client.get("/v0/health").json() == {"status": "ok"}
    ping = local.client.get("/ping")
    assert ping.text == "ok"
    assert ping.headers["content-type"].startswith("text/plain")
    regions = local.client.get("/v0/regions").json()["regions"]
    assert regions[0]["name"] == "local"
    assert "telemetry_token" not in regions[0]
    assert regions[0]["api_host"].startswith("http://127.0.0.1:")


def test_serve_mode_never_serves_tokens_and_writes_admin_token_file(
    make_local: Callable[..., Local], tmp_path: Path
) -> None:
    from tests.http.conftest import start_local

    client, _ = start_local(tmp_path / "prod", local_mode=False)
    try:
        assert client.get("/tokens").status_code == 404
        admin = (tmp_path / "prod" / "admin_token").read_text().strip()
        assert (tmp_path / "prod" / "admin_token").stat().st_mode & 0o777 == 0o600
        response = client.get("/v0/datasources", headers={"Authorization": f"Bearer {admin}"})
        assert response.status_code == 200
    finally:
        client.__exit__(None, None, None)


def test_pinned_local_tokens(make_local: Callable[..., Local], monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("TB_LOCAL_WORKSPACE_TOKEN", "pinned-workspace-token")
    monkeypatch.setenv("TB_LOCAL_USER_TOKEN", "pinned-user-token")
    local = make_local()
    assert local.admin == "pinned-workspace-token"
    assert local.user == "pinned-user-token"
    assert local.client.get("/v0/tokens", headers=local.auth("pinned-workspace-token")).status_code == 200
    listed = local.client.get("/v1/user/workspaces", headers=local.auth("pinned-user-token"))
    assert listed.status_code == 200
