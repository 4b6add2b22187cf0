"""Clients meeting 429s: a birdhouse whose workspace allows 1 request/s with a burst of 1 (SPEC §2.3, §11).

The header rules every client depends on: all three X-RateLimit-* together, base-10 integers, Remaining `0` on a
429 (tinybird-python-sdk sleeps only then: anything else is a hot loop), and an integer Retry-After ≥ 1 (the OTel
exporter's strconv.Atoi, urllib3 in tb CLI 5, zod-bird's parseInt, @tinybirdco/sdk's retry delay)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.clients.proxy import RecordingProxy
from tests.clients.support import (
    NODE_DIR,
    PYSDK,
    PYSDK_SCRIPTS,
    TS_SDK,
    auth,
    broke,
    json_lines,
    output_of,
    run,
    venv_bin,
    wait_for_flushed_rows,
)
from tests.server import LocalServer

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def until_limited(server: LocalServer) -> httpx.Response:
    """POST empty bodies until one is refused (the bucket holds one token)."""
    for _ in range(5):
        response = httpx.post(
            f"{server.url}/v0/events?name=replayed_events", content=b"", headers=auth(server.admin), timeout=30
        )
        if response.status_code == 429:
            return response
    raise AssertionError(f"no 429 from a 1 request/s workspace: last {response.status_code} {response.text!r}")


def test_429_headers_every_client_can_parse(limited: LocalServer) -> None:
    response = until_limited(limited)
    client = "429 headers (OTel exporter Atoi, urllib3, zod-bird parseInt, tinybird-python-sdk int())"
    shown = {k: v for k, v in response.headers.items() if k.lower().startswith(("x-ratelimit", "retry-after"))}
    assert response.text == "Too many requests\n", broke(client, f"429 body {response.text!r}")
    for name in RATE_HEADERS:
        value = response.headers.get(name)
        assert value is not None and value.isdigit(), broke(client, f"{name}: {shown}")
    assert response.headers["X-RateLimit-Remaining"] == "0", broke(client, f"Remaining must be 0 on a 429: {shown}")
    retry_after = response.headers.get("Retry-After", "")
    assert retry_after.isdigit() and int(retry_after) >= 1, broke(
        client, f"Retry-After must be an integer ≥ 1: {shown}"
    )


@pytest.mark.usefixtures("clients")
def test_python_sdk_datasource_retries_and_lands(limited: LocalServer, limited_proxy: RecordingProxy) -> None:
    """The sync Datasource loops while 429 and sleeps ~2 s when Remaining is 0: it must end, with its rows in."""
    client = f"{PYSDK} Datasource under 429"
    config = {"url": limited_proxy.url, "token": limited.admin, "ds": "pysdk_events", "mode": "sync"}
    started = time.monotonic()
    result = run([venv_bin("pysdk", "python"), PYSDK_SCRIPTS / "pysdk_ratelimited.py", json.dumps(config)], timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, broke(client, "did not end cleanly within 60 s", limited_proxy, output_of(result))
    report = next((r for r in json_lines(result.stdout) if r.get("step") == "sync"), None)
    assert report is not None, broke(client, "no report", limited_proxy, output_of(result))
    posts = limited_proxy.recorded("POST", "/v0/events")
    refused = [p for p in posts if p.status == 429]
    # One POST from the script to spend the token, then the SDK: ≥1 refused, then accepted. Bounded: no hot loop.
    assert refused and len(posts) <= 8, broke(client, f"{len(posts)} POSTs in {elapsed:.1f}s", limited_proxy)
    assert posts[-1].status == 202, broke(client, "the SDK's last POST was not accepted", limited_proxy)
    assert report["limit"] == 1 and report["remaining"] in (0, 1), broke(
        client, f"headers as the SDK parsed them: {report}", limited_proxy
    )
    found = wait_for_flushed_rows(
        limited, "SELECT n FROM pysdk_events WHERE scenario = 'ratelimited_sync' ORDER BY n", lambda r: len(r) == 3
    )
    assert found == [{"n": 0}, {"n": 1}, {"n": 2}], broke(client, f"rows: {found}", limited_proxy)


@pytest.mark.usefixtures("clients")
def test_python_sdk_async_datasource_ends(limited: LocalServer, limited_proxy: RecordingProxy) -> None:
    """AsyncDatasource tries once (backoff max_tries=1) and raises RateLimitError: it must end, having parsed the
    headers as integers (a missing or non-integer header would be a TypeError/ValueError instead)."""
    time.sleep(1.1)  # let the previous test's token refill, so the script's own POST takes it
    client = f"{PYSDK} AsyncDatasource under 429"
    config = {"url": limited_proxy.url, "token": limited.admin, "ds": "pysdk_events", "mode": "async"}
    result = run([venv_bin("pysdk", "python"), PYSDK_SCRIPTS / "pysdk_ratelimited.py", json.dumps(config)], timeout=60)
    assert result.returncode == 0, broke(client, "did not end cleanly within 60 s", limited_proxy, output_of(result))
    report = next((r for r in json_lines(result.stdout) if r.get("step") == "async"), None)
    assert report is not None, broke(client, "no report", limited_proxy, output_of(result))
    assert report["outcome"] in ("RateLimitError", "flushed"), broke(client, f"{report}", limited_proxy)
    if report["outcome"] == "RateLimitError":
        assert report["remaining"] == 0 and report["retry_after"] >= 1, broke(client, f"{report}", limited_proxy)
    assert len(limited_proxy.recorded("POST", "/v0/events")) <= 3, broke(client, "retried in a loop", limited_proxy)


@pytest.mark.usefixtures("clients")
def test_ts_sdk_retries_with_retry_after(limited: LocalServer, limited_proxy: RecordingProxy) -> None:
    client = f"{TS_SDK} ingest({{maxRetries}}) under 429"
    time.sleep(1.1)
    config = {"url": limited_proxy.url, "token": limited.admin, "ds": "ts_events"}
    result = run(
        ["node", NODE_DIR / "sdk_scenario.mjs", json.dumps(config), "retry429", "no429Retry"], timeout=90, cwd=NODE_DIR
    )
    found = {line["step"]: line for line in json_lines(result.stdout)}
    assert result.returncode == 0 and set(found) == {"retry429", "no429Retry"}, broke(
        client, "the scenario did not complete", limited_proxy, output_of(result)
    )
    retried = found["retry429"]
    assert retried["ok"] and retried["value"] == [{"successful_rows": 1, "quarantined_rows": 0}] * 3, broke(
        client, f"{retried}", limited_proxy
    )
    refused = [p for p in limited_proxy.recorded("POST", "/v0/events") if p.status == 429]
    assert refused, broke(client, "no 429 was met (the test proves nothing)", limited_proxy)
    # Without maxRetries the SDK surfaces the 429 with birdhouse's text body.
    errors = found["no429Retry"]["value"]
    assert errors and all(e["statusCode"] == 429 for e in errors), broke(client, f"{errors}", limited_proxy)
    assert errors[0]["message"] == "Request failed with status 429: Too many requests\n", broke(
        client, f"{errors}", limited_proxy
    )


@pytest.mark.parametrize("client", ["OpenTelemetry exporter", "zod-bird"])
def test_retry_after_parses_for_replayed_clients(limited: LocalServer, client: str) -> None:
    time.sleep(1.1)
    response = until_limited(limited)
    value = response.headers.get("Retry-After", "")
    # Go strconv.Atoi and JS parseInt both need a bare base-10 integer (zod-bird then waits that many ms).
    assert value.isdigit() and str(int(value)) == value, broke(f"{client} (replayed)", f"Retry-After {value!r}")
