"""npm @tinybirdco/sdk 0.0.84 (Node 20) against birdhouse (SPEC §11 [TS])."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.clients.proxy import RecordingProxy
from tests.clients.support import (
    NODE_DIR,
    TS_SDK,
    auth,
    broke,
    json_lines,
    output_of,
    rows,
    run,
    wait_for_flushed_rows,
)
from tests.server import LocalServer

pytestmark = pytest.mark.usefixtures("clients")


def sdk(proxy: RecordingProxy, token: str, *steps: str, **extra: str) -> dict[str, dict[str, Any]]:
    """Run sdk_scenario.mjs steps through the proxy; {step: {"ok", "value"|"error"}}."""
    config = {"url": proxy.url, "token": token, "ds": "ts_events", **extra}
    result = run(["node", NODE_DIR / "sdk_scenario.mjs", json.dumps(config), *steps], timeout=120, cwd=NODE_DIR)
    found = {line["step"]: line for line in json_lines(result.stdout)}
    assert result.returncode == 0 and set(found) == set(steps), broke(
        TS_SDK, f"node sdk_scenario.mjs {' '.join(steps)} did not complete", proxy, output_of(result)
    )
    return found


def ok(step: dict[str, Any], proxy: RecordingProxy, what: str) -> Any:
    assert step["ok"], broke(TS_SDK, f"{what} threw {step.get('error')}", proxy)
    return step["value"]


def test_ingest_ingest_batch_and_sql(server: LocalServer, proxy: RecordingProxy) -> None:
    out = sdk(proxy, server.admin, "ingest", "ingestBatch", "emptyBatch", "quarantined", "clientIngest", "sql")
    counts = {"successful_rows": 1, "quarantined_rows": 0}
    assert ok(out["ingest"], proxy, "ingest()") == counts
    assert ok(out["ingestBatch"], proxy, "ingestBatch()") == {"successful_rows": 3, "quarantined_rows": 0}
    assert ok(out["emptyBatch"], proxy, "ingestBatch([])") == {"successful_rows": 0, "quarantined_rows": 0}
    assert ok(out["quarantined"], proxy, "ingest() of a bad row") == {"successful_rows": 0, "quarantined_rows": 1}
    assert ok(out["clientIngest"], proxy, "createClient().datasources.ingest()") == counts

    posts = proxy.recorded("POST", "/v0/events")
    # The empty batch is not sent: ingest, ingestBatch, quarantined, clientIngest.
    assert len(posts) == 4, broke(TS_SDK, f"expected 4 POST /v0/events, got {len(posts)}", proxy)
    for post in posts:
        assert post.query == {"name": ["ts_events"], "wait": ["true"], "from": ["ts-sdk"]}, broke(
            TS_SDK, f"query string of {post.describe()}", proxy
        )
        assert post.header("Content-Type") == "application/x-ndjson", broke(TS_SDK, post.describe(), proxy)
        assert post.status == 200, broke(TS_SDK, f"wait=true must answer 200: {post.describe()}", proxy)
        assert not post.body.endswith(b"\n"), broke(TS_SDK, "the SDK sends no final newline", proxy)
    batch = posts[1].body.decode().split("\n")
    assert len(batch) == 3 and json.loads(batch[0])["big"] == "1152921504606846977", broke(
        TS_SDK, f"ingestBatch body: {posts[1].body!r}", proxy
    )

    # sql(): POST /v0/sql with raw SQL as text/plain; no FORMAT → the JSON the SDK parses. wait=true rows are
    # visible at once.
    result = ok(out["sql"], proxy, "sql()")
    sql_post = proxy.recorded("POST", "/v0/sql")
    assert sql_post and sql_post[0].header("Content-Type") == "text/plain", broke(TS_SDK, "sql() request", proxy)
    assert {"meta", "data", "rows", "statistics"} <= set(result), broke(TS_SDK, f"sql() result: {result}", proxy)
    assert result["data"] == [
        {
            "step": "ingest",
            "id": 1,
            "big": "18446744073709551615",
            "attrs": {"plan": "pro", "region": "eu"},
            "tags": ["x", "y"],
        },
        {"step": "ingestBatch", "id": 1, "big": "1152921504606846977", "attrs": {"n": "1"}, "tags": []},
        {"step": "ingestBatch", "id": 2, "big": "1152921504606846978", "attrs": {"n": "2"}, "tags": []},
        {"step": "ingestBatch", "id": 3, "big": "1152921504606846979", "attrs": {"n": "3"}, "tags": []},
    ], broke(TS_SDK, f"rows read back through sql(): {result['data']}", proxy)
    nested = rows(server, "SELECT nested FROM ts_events WHERE step = 'ingest'")
    assert json.loads(nested[0]["nested"]) == {"a": [1, 2], "b": {"c": "✓"}}, broke(
        TS_SDK, f"object into String: {nested}", proxy
    )


def test_ingest_without_wait(server: LocalServer, proxy: RecordingProxy) -> None:
    out = sdk(proxy, server.admin, "noWait")
    assert ok(out["noWait"], proxy, "ingest(…, {wait: false})") == {"successful_rows": 1, "quarantined_rows": 0}
    post = proxy.recorded("POST", "/v0/events")[0]
    assert post.status == 202 and "wait" not in post.query, broke(TS_SDK, post.describe(), proxy)
    found = wait_for_flushed_rows(server, "SELECT id FROM ts_events WHERE step = 'noWait'", lambda r: len(r) == 1)
    assert found == [{"id": 1}], broke(TS_SDK, f"the wait=false row did not arrive: {found}", proxy)


def test_create_static_token(server: LocalServer, proxy: RecordingProxy) -> None:
    out = sdk(proxy, server.admin, "createStaticToken")
    value = ok(out["createStaticToken"], proxy, "createToken({name, scope})")
    assert value["tokenPrefix"] == "p.", broke(TS_SDK, f"createToken() result: {value}", proxy)
    assert value["appended"] == {"successful_rows": 1, "quarantined_rows": 0}, broke(
        TS_SDK, "ingest() with the new APPEND token", proxy
    )
    # Reading with an append-only token: 403 with a JSON {"error"} the SDK surfaces as the message.
    error = value["sqlError"]
    assert error and error["statusCode"] == 403 and error["isApiError"], broke(TS_SDK, f"sql() error: {error}", proxy)
    assert error["response"] and error["message"] == error["response"]["error"], broke(
        TS_SDK, f"403 body not parsed as {{error}}: {error}", proxy
    )
    created = proxy.recorded("POST", "/v0/tokens")
    assert created and created[0].header("Content-Type") == "application/json", broke(TS_SDK, "token request", proxy)


def test_create_jwt(server: LocalServer, proxy: RecordingProxy) -> None:
    out = sdk(proxy, server.admin, "createJWT")
    value = ok(out["createJWT"], proxy, "createJWT({name, expiresAt, scopes})")
    assert value["segments"] == 3, broke(TS_SDK, f"not a JWT: {value}", proxy)
    assert value["rows"] and "n" in value["rows"][0], broke(TS_SDK, f"sql() with the JWT: {value}", proxy)


def test_error_paths(server: LocalServer, proxy: RecordingProxy) -> None:
    out = sdk(proxy, server.admin, "errorInvalidToken", "errorSql", "errorClient")
    # /v0/events errors are text/plain: the SDK's message is "Request failed with status N: <body>".
    invalid = out["errorInvalidToken"]
    assert not invalid["ok"] and invalid["error"]["isApiError"], broke(TS_SDK, "ingest() with a bad token", proxy)
    assert invalid["error"]["statusCode"] == 403, broke(TS_SDK, f"{invalid}", proxy)
    assert invalid["error"]["message"] == "Request failed with status 403: Invalid token\n", broke(
        TS_SDK, f"403 from /v0/events: {invalid}", proxy
    )
    # Other APIs answer JSON {"error"}: the SDK uses it as the message.
    bad_sql = out["errorSql"]
    assert not bad_sql["ok"] and bad_sql["error"]["statusCode"] == 400, broke(TS_SDK, f"{bad_sql}", proxy)
    assert bad_sql["error"]["response"] and bad_sql["error"]["message"] == bad_sql["error"]["response"]["error"], broke(
        TS_SDK, f"400 from /v0/sql not parsed as {{error}}: {bad_sql}", proxy
    )
    assert "no_such_column" in bad_sql["error"]["message"], broke(TS_SDK, f"{bad_sql}", proxy)
    client_error = out["errorClient"]
    assert not client_error["ok"] and client_error["error"]["isClientError"], broke(TS_SDK, f"{client_error}", proxy)
    assert client_error["error"]["statusCode"] == 403, broke(TS_SDK, f"{client_error}", proxy)


def test_append_file(server: LocalServer, proxy: RecordingProxy) -> None:
    out = sdk(proxy, server.admin, "appendFile")
    value = ok(out["appendFile"], proxy, "appendDatasource({file: 'rows.ndjson'})")
    assert value["successful_rows"] == 2 and value["quarantined_rows"] == 0, broke(TS_SDK, f"{value}", proxy)
    assert isinstance(value.get("import_id"), str), broke(TS_SDK, f"{value}", proxy)


def test_truncate(server: LocalServer, proxy: RecordingProxy) -> None:
    created = httpx.post(
        f"{server.url}/v0/datasources",
        data={"name": "ts_truncate", "schema": "id Int32 `json:$.id`"},
        headers=auth(server.admin),
        timeout=30,
    )
    assert created.status_code == 200, created.text
    loaded = httpx.post(
        f"{server.url}/v0/events?name=ts_truncate&wait=true", content='{"id": 1}', headers=auth(server.admin)
    )
    assert loaded.status_code == 200, loaded.text
    out = sdk(proxy, server.admin, "truncate", truncateDs="ts_truncate")
    assert ok(out["truncate"], proxy, "truncateDatasource()") == {}, broke(TS_SDK, "truncate result", proxy)
    assert rows(server, "SELECT count() AS n FROM ts_truncate") == [{"n": 0}], broke(TS_SDK, "rows left", proxy)


def test_local_detection(server: LocalServer, proxy: RecordingProxy) -> None:
    # The SDK asks http://localhost:7181/tokens; the scenario redirects that one address to the proxy.
    out = sdk(proxy, server.admin, "localTokens", localUrl=proxy.url)
    value = ok(out["localTokens"], proxy, "isLocalRunning() / getLocalTokens()")
    assert value == {
        "running": True,
        "keys": ["admin_token", "user_token", "workspace_admin_token"],
        "workspaceAdminMatches": True,
    }, broke(TS_SDK, f"Tinybird Local detection: {value}", proxy)


def test_local_workspace(server: LocalServer, proxy: RecordingProxy) -> None:
    out = sdk(proxy, server.admin, "localWorkspace", localUrl=proxy.url)
    value = ok(out["localWorkspace"], proxy, "getOrCreateLocalWorkspace()")
    assert value == {"created": True, "reused": True, "sameId": True, "hasToken": True}, broke(
        TS_SDK, f"{value}", proxy
    )
