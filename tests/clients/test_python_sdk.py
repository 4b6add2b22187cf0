"""PyPI tinybird-python-sdk 0.3.7 (import `tb`) against birdhouse, run in its own virtualenv (SPEC §11 [PySDK])."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx
import pytest

from tests.clients.proxy import Exchange, RecordingProxy
from tests.clients.support import (
    PYSDK,
    PYSDK_SCRIPTS,
    auth,
    broke,
    json_lines,
    output_of,
    run,
    venv_bin,
    wait_for_flushed_rows,
)
from tests.server import LocalServer

pytestmark = pytest.mark.usefixtures("clients")


def run_scenario(script: str, config: dict[str, Any], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return run([venv_bin("pysdk", "python"), PYSDK_SCRIPTS / script, json.dumps(config)], timeout=timeout)


def steps_of(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {line["step"]: line for line in json_lines(result.stdout)}


def tracker_token(server: LocalServer) -> str:
    """The `tracker` token (APPEND on analytics_events) that the deployed datafile declares."""
    response = httpx.get(f"{server.url}/v0/tokens/tracker", headers=auth(server.admin), timeout=10)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def check_event_posts(
    client: str, proxy: RecordingProxy, query: dict[str, list[str]], content_type: str | None
) -> list[Exchange]:
    """Every POST /v0/events the SDK made has the SDK's query string and Content-Type (requests sends none, aiohttp
    text/plain), and got a 2xx JSON answer."""
    posts = proxy.recorded("POST", "/v0/events")
    assert posts, broke(client, "no POST /v0/events was made", proxy)
    for post in posts:
        assert post.query == query, broke(client, f"unexpected query string in {post.describe()}", proxy)
        assert post.header("Content-Type") == content_type, broke(client, "unexpected Content-Type", proxy)
        assert (post.header("Authorization") or "").startswith("Bearer "), broke(client, "no Bearer token", proxy)
        assert 200 <= post.status < 300, broke(client, f"{post.describe()} was not accepted", proxy)
        body = json.loads(post.response_body)
        assert set(body) == {"successful_rows", "quarantined_rows"}, broke(client, f"body of {post.describe()}", proxy)
        assert (post.response_header("Content-Type") or "").startswith("application/json"), broke(
            client, f"{post.describe()} is not application/json", proxy
        )
    return posts


def test_datasource_buffered_appends(server: LocalServer, proxy: RecordingProxy) -> None:
    client = f"{PYSDK} Datasource"
    result = run_scenario("pysdk_datasource.py", {"url": proxy.url, "token": server.admin, "ds": "pysdk_events"})
    steps = steps_of(result)
    assert result.returncode == 0 and all(s["ok"] for s in steps.values()), broke(
        client, "the scenario did not complete", proxy, output_of(result)
    )
    assert set(steps) == {"context", "explicit", "timer", "records"}, broke(client, "steps missing", proxy)

    posts = check_event_posts(
        client, proxy, {"mode": ["append"], "name": ["pysdk_events"], "format": ["ndjson"], "wait": ["false"]}, None
    )
    bodies = [p.body for p in posts]
    # context: 1 POST; explicit: flush() + the timer's empty chunk; timer: 1; records: 4 + 4 + 2.
    assert len(posts) == 7, broke(client, f"expected 7 POSTs, got {len(posts)}", proxy)
    assert b"" in bodies, broke(client, "the timer's empty-chunk POST was not made", proxy)
    assert all(b == b"" or b.endswith(b"\n") for b in bodies), broke(client, "rows not newline-terminated", proxy)

    expected = {"context": 5, "explicit": 3, "timer": 3, "records": 10}
    found = wait_for_flushed_rows(
        server,
        "SELECT scenario, count() AS c FROM pysdk_events WHERE scenario IN ('context', 'explicit', 'timer', 'records')"
        " GROUP BY scenario",
        lambda r: {x["scenario"]: int(x["c"]) for x in r} == expected,
    )
    assert {x["scenario"]: int(x["c"]) for x in found} == expected, broke(client, f"rows in birdhouse: {found}", proxy)
    detail = wait_for_flushed_rows(
        server,
        "SELECT n, tags, note, toString(at) AS at FROM pysdk_events WHERE scenario IN ('context', 'explicit') ORDER BY"
        " scenario, n",
        lambda r: len(r) == 8,
    )
    assert detail[0] == {"n": 0, "tags": {"k": "0"}, "note": "", "at": "2025-06-12 10:15:30.123"}, broke(
        client, f"row values: {detail}", proxy
    )
    assert detail[-1]["note"] == "bytes row ✓", broke(client, f"row values: {detail}", proxy)


def test_async_datasource(server: LocalServer, proxy: RecordingProxy) -> None:
    client = f"{PYSDK} AsyncDatasource"
    config = {"url": proxy.url, "token": server.admin, "ds": "pysdk_events", "append_token": tracker_token(server)}
    result = run_scenario("pysdk_async.py", config)
    steps = steps_of(result)
    assert result.returncode == 0 and all(s["ok"] for s in steps.values()), broke(
        client, "the scenario did not complete", proxy, output_of(result)
    )
    assert set(steps) == {"initialize", "async_context", "async_shift"}, broke(client, "steps missing", proxy)
    # initialize(): GET /v0/datasources with an append-only token must not be a 403 (the SDK would sys.exit).
    checks = proxy.recorded("GET", "/v0/datasources")
    assert checks and checks[0].status == 200, broke(client, "GET /v0/datasources with an append-only token", proxy)
    check_event_posts(
        client, proxy, {"name": ["pysdk_events"], "format": ["ndjson"], "wait": ["false"]}, "text/plain; charset=utf-8"
    )

    expected = {"async_context": 6, "async_shift": 4}
    found = wait_for_flushed_rows(
        server,
        "SELECT scenario, count() AS c, groupUniqArray(toString(at)) AS at, groupUniqArray(tags['async']) AS tag"
        " FROM pysdk_events WHERE scenario LIKE 'async%' GROUP BY scenario",
        lambda r: {x["scenario"]: int(x["c"]) for x in r} == expected,
    )
    assert {x["scenario"]: int(x["c"]) for x in found} == expected, broke(client, f"rows in birdhouse: {found}", proxy)
    assert all(x["at"] == ["2025-06-12 10:15:30.500"] and x["tag"] == ["yes"] for x in found), broke(
        client, f"row values: {found}", proxy
    )


def test_logging_handler_and_litellm_rows(server: LocalServer, proxy: RecordingProxy) -> None:
    client = f"{PYSDK} TinybirdLoggingHandler / LiteLLM handler"
    result = run_scenario("pysdk_handlers.py", {"url": proxy.url, "token": server.admin})
    steps = steps_of(result)
    assert result.returncode == 0 and all(s["ok"] for s in steps.values()), broke(
        client, "the scenario did not complete", proxy, output_of(result)
    )
    assert steps["litellm"]["status"] == 202, broke(client, "POST /v0/events?name=litellm", proxy)
    assert json.loads(steps["litellm"]["body"]) == {"successful_rows": 1, "quarantined_rows": 0}, broke(
        client, "the LiteLLM row was not accepted whole", proxy
    )
    for post in proxy.recorded("POST", "/v0/events"):
        assert json.loads(post.response_body)["quarantined_rows"] == 0, broke(
            client, f"{post.describe()} quarantined a row", proxy
        )

    logs = wait_for_flushed_rows(
        server,
        "SELECT levelname, message, formatted_message, toUnixTimestamp(created) AS created, toString(asctime) AS"
        " asctime, extra FROM tb_logs WHERE app_name = 'client-tests' ORDER BY level",
        lambda r: len(r) == 2,
    )
    assert [x["message"] for x in logs] == ["order ord_8f2k1 created for 3 items", "disk almost full"], broke(
        client, f"tb_logs rows: {logs}", proxy
    )
    assert logs[0]["created"] > 1_700_000_000 and len(logs[0]["asctime"]) == 26, broke(
        client, f"epoch float into DateTime / isoformat into DateTime64(6): {logs}", proxy
    )
    assert json.loads(logs[1]["extra"])["disk"] == {"mount": "/var", "free_pct": 4.5}, broke(
        client, f"nested extra into String: {logs}", proxy
    )

    llm = wait_for_flushed_rows(
        server,
        "SELECT messages, toString(start_time) AS start_time, response, cost, duration, cache_hit FROM litellm"
        " WHERE id = '0f3c2a1e-litellm-call'",
        lambda r: len(r) == 1,
    )
    assert llm and llm[0]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": 'Say "hi" in 2 languages\nplease'},
    ], broke(client, f"Array(Map(String, String)) `json:$.messages[:]`: {llm}", proxy)
    assert llm[0]["start_time"] == "2025-06-12 10:15:30.123456", broke(client, f"isoformat start_time: {llm}", proxy)
    assert json.loads(llm[0]["response"])["choices"][0]["message"]["content"] == "hi / hola", broke(
        client, f"object into String: {llm}", proxy
    )
