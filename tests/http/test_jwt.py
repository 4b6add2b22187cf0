"""JWT tokens (SPEC §7.5–7.6): created through the Tokens API, signed with the
workspace admin token, honoured for reads, and for events only when enabled."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from birdhouse.catalog.jwt import encode_jwt
from tests.http.conftest import Local


def make_jwt(local: Local, scopes: list[dict[str, Any]], expires_in: int = 3600, **extra: Any) -> str:
    response = local.client.post(
        f"/v0/tokens/?expiration_time={int(time.time()) + expires_in}",
        json={"name": "browser", "scopes": scopes, **extra},
        headers=local.auth(),
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"token"}
    token: str = response.json()["token"]
    return token


def sql(local: Local, q: str, token: str) -> Any:
    return local.client.get("/v0/sql", params={"q": q}, headers=local.auth(token))


def test_jwt_reads_what_its_scopes_allow(local: Local) -> None:
    local.create_datasource("events", "a Int32 `json:$.a`")
    local.create_datasource("secret", "a Int32 `json:$.a`")
    jwt = make_jwt(local, [{"type": "DATASOURCES:READ", "resource": "events"}])
    assert not jwt.startswith("p.") and jwt.count(".") == 2
    assert sql(local, "SELECT count() c FROM events", jwt).json()["data"] == [{"c": 0}]
    assert sql(local, "SELECT count() FROM secret", jwt).status_code == 403
    # Tokens API and writes are out of reach.
    assert local.client.get("/v0/tokens", headers=local.auth(jwt)).status_code == 403
    assert local.client.post("/v0/events?name=events", content=b'{"a":1}', headers=local.auth(jwt)).status_code == 403


def test_expired_forged_and_foreign_jwts_are_refused(local: Local) -> None:
    local.create_datasource("events", "a Int32 `json:$.a`")
    expired = make_jwt(local, [{"type": "DATASOURCES:READ", "resource": "events"}], expires_in=-10)
    assert sql(local, "SELECT 1 FROM events", expired).status_code == 403
    ws = local.runtime.default_workspace()
    assert ws is not None
    claims = {
        "workspace_id": ws.id,
        "name": "x",
        "exp": int(time.time()) + 60,
        "scopes": [{"type": "DATASOURCES:READ", "resource": "events"}],
    }
    forged = encode_jwt(claims, "not-the-admin-token")
    assert sql(local, "SELECT 1 FROM events", forged).status_code == 403
    no_exp = encode_jwt({k: v for k, v in claims.items() if k != "exp"}, local.admin)
    assert sql(local, "SELECT 1 FROM events", no_exp).status_code == 403
    admin_scope = encode_jwt({**claims, "scopes": [{"type": "ADMIN"}]}, local.admin)
    assert sql(local, "SELECT 1 FROM events", admin_scope).status_code == 403
    bad = local.client.post("/v0/tokens?expiration_time=soon", json={"name": "x", "scopes": []}, headers=local.auth())
    assert bad.status_code == 400
    no_scope = local.client.post(
        f"/v0/tokens?expiration_time={int(time.time()) + 60}",
        json={"name": "x", "scopes": [{"type": "ADMIN"}]},
        headers=local.auth(),
    )
    assert no_scope.status_code == 400


def test_jwt_appends_only_when_enabled_with_its_own_rps(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"events.accept_jwt": True})
    local.create_datasource("events", "a Int32 `json:$.a`")
    jwt = make_jwt(local, [{"type": "DATASOURCES:APPEND", "resource": "events"}], limits={"rps": 1})
    first = local.client.post("/v0/events?name=events", content=b'{"a":1}', headers=local.auth(jwt))
    assert first.status_code == 202, first.text
    limited = local.client.post("/v0/events?name=events", content=b'{"a":2}', headers=local.auth(jwt))
    assert limited.status_code == 429 and limited.headers["x-ratelimit-limit"] == "1"
    local.create_datasource("other", "a Int32 `json:$.a`")
    unlimited = make_jwt(local, [{"type": "DATASOURCES:APPEND", "resource": "events"}])
    other = local.client.post("/v0/events?name=other", content=b'{"a":1}', headers=local.auth(unlimited))
    assert (other.status_code, other.text) == (403, "Invalid token\n")
