"""Workspaces: creation, listing, deletion and isolation between tenants."""

from __future__ import annotations

from tests.http.conftest import Local


def test_default_workspace_listed_with_admin_token(local: Local) -> None:
    body = local.client.get(
        "/v1/user/workspaces", params={"with_organization": "true"}, headers=local.auth(local.user)
    ).json()
    assert body["organization_id"]
    assert [w["name"] for w in body["workspaces"]] == ["Tinybird_Local_Testing"]
    assert body["workspaces"][0]["token"] == local.admin


def test_create_workspace_needs_user_token(local: Local) -> None:
    denied = local.client.post("/v1/workspaces", params={"name": "other"}, headers=local.auth())
    assert denied.status_code == 403
    missing = local.client.post("/v1/workspaces", headers=local.auth(local.user))
    assert missing.status_code == 400
    bad = local.client.post("/v1/workspaces", params={"name": "a;DROP"}, headers=local.auth(local.user))
    assert bad.status_code == 400
    assert "a;DROP" in bad.json()["error"]


def test_workspaces_are_isolated(local: Local) -> None:
    created = local.client.post(
        "/v1/workspaces", params={"name": "Tinybird_Local_Build_abc"}, headers=local.auth(local.user)
    )
    assert created.status_code == 200, created.text
    other = created.json()
    assert other["name"] == "Tinybird_Local_Build_abc"
    local.create_datasource("secret_events", "a Int32 `json:$.a`")
    # Same name in the other workspace is a different data source.
    local.create_datasource("secret_events", "b String `json:$.b`", token=other["token"])
    mine = local.client.get("/v0/datasources/secret_events", headers=local.auth()).json()
    theirs = local.client.get("/v0/datasources/secret_events", headers=local.auth(other["token"])).json()
    assert mine["id"] != theirs["id"]
    assert [c["name"] for c in theirs["columns"]] == ["b"]
    # A token of workspace B cannot see, read or manage workspace A's things.
    assert local.client.get(f"/v0/datasources/{mine['id']}", headers=local.auth(other["token"])).status_code == 404
    names = {t["name"] for t in local.client.get("/v0/tokens", headers=local.auth(other["token"])).json()["tokens"]}
    assert "Workspace admin token" in names
    mine_tokens = local.client.get("/v0/tokens", headers=local.auth()).json()["tokens"]
    assert all(t["token"] != other["token"] for t in mine_tokens)
    # Workspaces listing shows both to the user token.
    listed = local.client.get("/v1/user/workspaces", headers=local.auth(local.user)).json()["workspaces"]
    assert {w["name"] for w in listed} == {"Tinybird_Local_Testing", "Tinybird_Local_Build_abc"}
    # Deleting removes it; its tokens stop working.
    deleted = local.client.delete(
        f"/v1/workspaces/{other['id']}", params={"hard_delete_confirmation": "yes"}, headers=local.auth(local.user)
    )
    assert deleted.status_code == 200
    gone = local.client.get("/v0/datasources", headers=local.auth(other["token"]))
    assert gone.status_code == 404
    assert gone.json() == {"error": "Workspace not found"}
    assert local.client.get("/v0/datasources/secret_events", headers=local.auth()).status_code == 200


def test_duplicate_workspace_name_conflicts(local: Local) -> None:
    first = local.client.post("/v1/workspaces", params={"name": "twice"}, headers=local.auth(local.user))
    assert first.status_code == 200
    second = local.client.post("/v1/workspaces", params={"name": "twice"}, headers=local.auth(local.user))
    assert second.status_code == 409
    assert "twice" in second.json()["error"]
