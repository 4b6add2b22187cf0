"""Tokens: format, verification, scopes, and the Tokens API (SPEC §7)."""

from __future__ import annotations

import base64
import json

import pytest

from birdhouse.catalog.tokens import Scope, ScopeError, decode_token, mint_token, parse_scope
from tests.http.conftest import Local


def _payload(token: str) -> dict[str, str]:
    segment = token.split(".")[1]
    decoded: dict[str, str] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def test_token_format_matches_tinybird(local: Local) -> None:
    assert local.admin.startswith("p.")
    segment = local.admin.split(".")[1]
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()
    payload = json.loads(raw)
    assert list(payload) == ["u", "id", "host"]
    # Python's default separators, exactly as Tinybird mints them.
    assert raw == json.dumps(payload)
    assert payload["host"] == "local"
    workspaces = local.client.get("/v1/user/workspaces", headers=local.auth(local.user)).json()["workspaces"]
    assert payload["u"] == workspaces[0]["id"]


def test_mint_and_decode_roundtrip_and_forgeries() -> None:
    secret = b"s" * 32
    token = mint_token(secret, "ws", "tid", "local")
    claims = decode_token(secret, token)
    assert (claims.workspace_id, claims.token_id, claims.host) == ("ws", "tid", "local")
    from birdhouse.catalog.tokens import TokenInvalid

    for forged in (token[:-1], token + "x", token.replace("p.", "p.x", 1), "p.abc", "", "...", token[:20]):
        with pytest.raises(TokenInvalid):
            decode_token(secret, forged)
    with pytest.raises(TokenInvalid):
        decode_token(b"other-secret", token)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ADMIN", Scope("ADMIN")),
        ("DATASOURCES:CREATE", Scope("DATASOURCES:CREATE")),
        ("DATASOURCE:APPEND:events", Scope("DATASOURCES:APPEND", "events")),
        (
            "DATASOURCES:READ:events:country = 'ES' AND x::int > 1",
            Scope("DATASOURCES:READ", "events", "country = 'ES' AND x::int > 1"),
        ),
        ("PIPES:READ:top", Scope("PIPES:READ", "top")),
        ("WORKSPACE:READ_ALL", Scope("WORKSPACE:READ_ALL")),
    ],
)
def test_parse_scope(text: str, expected: Scope) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize("text", ["", "ROOT", "DATASOURCES:APPEND", "DATASOURCES:APPEND:", "DATASOURCES:DROP:x:f"])
def test_parse_scope_rejects(text: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(text)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic abc", "Token x", "p.x.y", "Bearer p.e30.AAAA", "Bearer not-a-token"],
)
def test_bad_credentials_are_403(local: Local, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = local.client.get("/v0/tokens", headers=headers)
    assert response.status_code == 403
    assert response.json() == {"error": "Invalid token"}


def test_truncated_and_tampered_tokens_are_403(local: Local) -> None:
    token = local.admin
    head, payload, signature = token.split(".")
    for bad in (token[:-3], f"{head}.{payload}.{signature[::-1]}", f"{head}.{payload[:-2]}.{signature}", token + "."):
        assert local.client.get("/v0/tokens", headers=local.auth(bad)).status_code == 403, bad


def test_token_of_another_region_is_404_with_hint(local: Local) -> None:
    claims = _payload(local.admin)
    foreign = mint_token(b"their-secret", claims["u"], claims["id"], "eu_shared")
    response = local.client.get("/v0/tokens", headers=local.auth(foreign))
    assert response.status_code == 404
    assert "eu_shared" in response.json()["error"]


def test_query_token_wins_over_header(local: Local) -> None:
    response = local.client.get("/v0/tokens", params={"token": local.admin}, headers=local.auth("garbage"))
    assert response.status_code == 200
    response = local.client.get("/v0/tokens", params={"token": "garbage"}, headers=local.auth())
    assert response.status_code == 403


def test_bearer_scheme_case_insensitive(local: Local) -> None:
    response = local.client.get("/v0/tokens", headers={"Authorization": f"bearer  {local.admin} "})
    assert response.status_code == 200


def test_tokens_api_lifecycle(local: Local) -> None:
    local.create_datasource("events", "a Int32 `json:$.a`")
    client = local.client
    created = client.post(
        "/v0/tokens", params={"name": "tracker", "scope": "DATASOURCES:APPEND:events"}, headers=local.auth()
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["name"] == "tracker"
    assert body["scopes"] == [{"type": "DATASOURCES:APPEND", "resource": "events"}]
    assert body["origin"] == {"type": "C"} and body["host"] == "local"
    assert _payload(body["token"])["id"] == body["id"]
    # JSON body form, scope as a list, singular alias.
    reader = client.post(
        "/v0/tokens/",
        json={"name": "reader", "description": "d", "scope": ["DATASOURCE:READ:events", "PIPES:READ:p"]},
        headers=local.auth(),
    )
    assert reader.status_code == 200, reader.text
    assert reader.json()["description"] == "d"
    # Duplicate name → 400; unknown data source → 400; invalid scope → 400.
    assert (
        client.post("/v0/tokens", params={"name": "tracker", "scope": "ADMIN"}, headers=local.auth()).status_code == 400
    )
    unknown = client.post("/v0/tokens", params={"name": "x", "scope": "DATASOURCES:READ:nope"}, headers=local.auth())
    assert unknown.status_code == 400 and "nope" in unknown.json()["error"]
    assert client.post("/v0/tokens", params={"name": "y", "scope": "GOD"}, headers=local.auth()).status_code == 400
    # Get by name or id.
    assert client.get("/v0/tokens/tracker", headers=local.auth()).json()["id"] == body["id"]
    assert client.get(f"/v0/tokens/{body['id']}", headers=local.auth()).json()["name"] == "tracker"
    # PUT replaces scopes (form body, as the CLI sends for long URLs).
    updated = client.put(
        "/v0/tokens/tracker", data={"scope": ["DATASOURCES:READ:events"], "description": "new"}, headers=local.auth()
    )
    assert updated.status_code == 200
    assert updated.json()["scopes"] == [{"type": "DATASOURCES:READ", "resource": "events"}]
    assert updated.json()["description"] == "new"
    # Refresh: new id and string; the old string dies at once.
    refreshed = client.post("/v0/tokens/tracker/refresh", headers=local.auth()).json()
    assert refreshed["token"] != body["token"] and refreshed["id"] != body["id"]
    assert client.get("/v0/datasources", headers=local.auth(body["token"])).status_code == 403
    assert client.get("/v0/datasources", headers=local.auth(refreshed["token"])).status_code == 200
    # Delete: 204, then the token is gone and unusable.
    assert client.delete("/v0/tokens/tracker", headers=local.auth()).status_code == 204
    assert client.get("/v0/tokens/tracker", headers=local.auth()).status_code == 404
    assert client.get("/v0/datasources", headers=local.auth(refreshed["token"])).status_code == 403


def test_tokens_api_needs_tokens_or_admin_scope(local: Local) -> None:
    local.create_datasource("events", "a Int32 `json:$.a`")
    appender = local.create_token("appender", "DATASOURCES:APPEND:events")
    manager = local.create_token("manager", "TOKENS")
    assert local.client.get("/v0/tokens", headers=local.auth(appender)).status_code == 403
    assert (
        local.client.post(
            "/v0/tokens", params={"name": "z", "scope": "ADMIN"}, headers=local.auth(appender)
        ).status_code
        == 403
    )
    assert local.client.get("/v0/tokens", headers=local.auth(manager)).status_code == 200


def test_default_tokens_of_a_workspace(local: Local) -> None:
    tokens = {t["name"]: t for t in local.client.get("/v0/tokens", headers=local.auth()).json()["tokens"]}
    assert tokens["Workspace admin token"]["scopes"] == [{"type": "ADMIN"}]
    assert tokens["create datasource token"]["scopes"] == [{"type": "DATASOURCES:CREATE"}]
    admin_user = [t for name, t in tokens.items() if name.startswith("admin ")]
    assert len(admin_user) == 1 and admin_user[0]["scopes"][0]["type"] == "ADMIN_USER"
