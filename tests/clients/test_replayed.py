"""SPEC §11's client table, for the clients not run for real here: their requests replayed byte for byte as the
table describes them, each trap asserted. (Real runs: test_python_sdk, test_ts_sdk, test_tb_cli, test_flock; the
OpenTelemetry exporter and Vector: test_otel, test_vector; 429 handling: test_rate_limits.)"""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.clients.support import auth, broke, rows, wait_for_flushed_rows
from tests.server import LocalServer


def marker() -> int:
    return time.time_ns()


def events(server: LocalServer, body: bytes, params: dict[str, str], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/v0/events", params=params, content=body, headers=headers, timeout=60)


def request_line(method: str, params: dict[str, str], headers: dict[str, str]) -> str:
    query = "&".join(f"{k}={v if k != 'token' else '<t>'}" for k, v in params.items())
    shown = {k: v for k, v in headers.items() if k != "Authorization"}
    return f"{method} /v0/events?{query} {shown}"


def success_counts(client: str, request: str, response: httpx.Response, ok: int, quarantined: int = 0) -> None:
    """The success body every client parses: exactly the two keys, JSON integers, application/json."""
    assert response.status_code in (200, 202), broke(client, f"{request} -> {response.status_code} {response.text!r}")
    assert response.headers.get("content-type", "").startswith("application/json"), broke(
        client, f"{request} -> Content-Type {response.headers.get('content-type')}"
    )
    body: Any = response.json()
    assert body == {"successful_rows": ok, "quarantined_rows": quarantined}, broke(client, f"{request} -> {body}")
    assert all(type(v) is int for v in body.values()), broke(client, f"{request}: counts are not JSON numbers")
    assert list(body) == ["successful_rows", "quarantined_rows"], broke(client, f"{request}: key order {body}")


# ---------------------------------------------------------------- zod-bird


@pytest.mark.parametrize("content_type", [None, "text/plain;charset=UTF-8"])
def test_zod_bird_ingest(server: LocalServer, content_type: str | None) -> None:
    """zod-bird: `POST /v0/events?name=<ds>&wait=true`, Bearer, no Content-Type (or fetch's text/plain for a
    string), lines joined by \\n; it schema-validates `{successful_rows: number, quarantined_rows: number}`."""
    client = "zod-bird (replayed)"
    run = marker()
    body = "\n".join(json.dumps({"client": "zod", "id": run + i, "at": "2025-06-12 10:00:00"}) for i in range(3))
    params = {"name": "replayed_events", "wait": "true"}
    headers = {**auth(server.admin), **({"Content-Type": content_type} if content_type else {})}
    response = events(server, body.encode(), params, headers)
    request = request_line("POST", params, headers)
    assert response.status_code == 200, broke(client, f"{request} -> {response.status_code} {response.text!r}")
    success_counts(client, request, response, 3)
    found = rows(server, f"SELECT count() AS n FROM replayed_events WHERE client = 'zod' AND id >= {run}")
    assert found == [{"n": 3}], broke(client, f"{request}: wait=true rows not visible at once: {found}")


# ------------------------------------------------------- tinybird-sdk (Python)


def test_tinybird_sdk_python_forward_ingest(server: LocalServer) -> None:
    """tinybird-sdk 0.1.8: `wait=true&from=python-sdk`, application/x-ndjson, no final newline, isoformat()
    datetimes with offsets, ints > 2^53 and Decimal as strings."""
    client = "tinybird-sdk 0.1.8 Python (replayed)"
    run = marker()
    lines = [
        {
            "client": "pysdk_new",
            "id": run,
            "big": "9007199254740993",
            "amount": "12345.6789",
            "at": "2025-06-12T12:15:30.123456+02:00",
            "flag": True,
        },
        {
            "client": "pysdk_new",
            "id": run + 1,
            "big": "-9223372036854775808",
            "amount": str(Decimal("0.0001")),
            "at": "2025-06-12T10:15:30+00:00",
            "flag": False,
        },
    ]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    params = {"name": "replayed_events", "wait": "true", "from": "python-sdk"}
    headers = {**auth(server.admin), "Content-Type": "application/x-ndjson"}
    response = events(server, body, params, headers)
    request = request_line("POST", params, headers)
    success_counts(client, request, response, 2)
    found = rows(
        server,
        "SELECT toString(big) AS big, toString(amount) AS amount, toString(at) AS at, flag FROM replayed_events"
        f" WHERE client = 'pysdk_new' AND id >= {run} ORDER BY id",
    )
    assert found == [
        {"big": "9007199254740993", "amount": "12345.6789", "at": "2025-06-12 10:15:30.123456", "flag": True},
        {"big": "-9223372036854775808", "amount": "0.0001", "at": "2025-06-12 10:15:30.000000", "flag": False},
    ], broke(client, f"{request}: quoted integers / decimals / +hh:mm offsets: {found}")
    # Errors: the SDK reads JSON {error} or text; /v0/events errors are text.
    denied = events(server, body, params, {"Authorization": "Bearer p.nope"})
    assert denied.status_code == 403 and denied.text == "Invalid token\n", broke(
        client, f"bad token -> {denied.status_code} {denied.text!r}"
    )


# ------------------------------------------------------- tb CLI 4.6.13 shapes


def test_tb_cli4_events_shape_and_text_errors(server: LocalServer) -> None:
    """tb CLI 4.6.13 `--events`: no Content-Type, no wait, `from=cli`; it reads `response.json()["successful_rows"]`
    without checking the status, so every error body must be text (a JSON error body crashes it with KeyError)."""
    client = "tb CLI 4.6.13 datasource append --events (replayed)"
    params = {"name": "cli_events", "from": "cli"}
    body = b'{"at": "2025-06-12 10:00:00", "who": "cli4_replay", "n": 1}'
    response = events(server, body, params, auth(server.admin))
    success_counts(client, request_line("POST", params, {}), response, 1)
    assert response.status_code == 202, broke(client, f"without wait -> {response.status_code}")
    for what, query, headers in [
        ("bad token", params, {"Authorization": "Bearer p.nope"}),
        ("no name", {"from": "cli"}, auth(server.admin)),
        ("corrupt gzip", params, {**auth(server.admin), "Content-Encoding": "gzip"}),
    ]:
        failed = events(server, body, query, headers)
        assert failed.status_code >= 400, broke(client, f"{what} -> {failed.status_code}")
        assert failed.headers.get("content-type") == "text/plain; charset=utf-8", broke(
            client, f"{what} -> Content-Type {failed.headers.get('content-type')}"
        )
        with pytest.raises(json.JSONDecodeError):
            json.loads(failed.text)


def test_tb_cli4_quarantine_read_path(server: LocalServer) -> None:
    """After `quarantined_rows > 0` the CLI at once runs `SELECT * FROM <ds>_quarantine ORDER BY insertion_date
    DESC LIMIT 1 FORMAT JSON` and indexes `data[0]`: the quarantine row must be committed before the response."""
    client = "tb CLI 4.6.13 quarantine read (replayed)"
    who = f"cli4_quarantine_{marker()}"
    body = json.dumps({"at": "yesterday-ish", "who": who, "n": "seven"}).encode()
    response = events(server, body, {"name": "cli_events", "from": "cli"}, auth(server.admin))
    success_counts(client, "POST /v0/events?name=cli_events&from=cli", response, 0, 1)
    query = "SELECT * FROM cli_events_quarantine ORDER BY insertion_date DESC LIMIT 1 FORMAT JSON"
    read = httpx.get(f"{server.url}/v0/sql", params={"q": query}, headers=auth(server.admin), timeout=30)
    assert read.status_code == 200, broke(client, f"GET /v0/sql?q={query} -> {read.status_code} {read.text}")
    data = read.json()["data"]
    assert data, broke(client, f"GET /v0/sql?q={query} -> no row right after the 202")
    row = data[0]
    assert row["who"] == who, broke(client, f"newest quarantine row is not this one: {row}")
    assert sorted(row["c__error_column"]) == ["at", "n"], broke(client, f"all failing columns (D11): {row}")
    assert len(row["c__error"]) == 2 and "insertion_date" in row, broke(client, f"quarantine row: {row}")


def test_tb_cli4_file_append(server: LocalServer) -> None:
    """`tb datasource append <ds> --file rows.ndjson`: multipart field `ndjson`, `debug=blocks_block_log`, token in
    the query string; it reads `datasource.name`, `blocks[].process_return[0].{parser,lines}`, then
    `statistics.row_count`."""
    client = "tb CLI 4.6.13 datasource append --file (replayed)"
    who = f"cli4_file_{marker()}"
    data = "".join(json.dumps({"at": "2025-06-12 10:00:00", "who": who, "n": n}) + "\n" for n in range(4))
    params = {
        "name": "cli_events",
        "mode": "append",
        "format": "ndjson",
        "debug": "blocks_block_log",
        "token": server.admin,
    }
    response = httpx.post(
        f"{server.url}/v0/datasources", params=params, files={"ndjson": ("rows.ndjson", data.encode())}, timeout=60
    )
    request = "POST /v0/datasources?name=cli_events&mode=append&format=ndjson&debug=blocks_block_log (multipart)"
    assert response.status_code == 200, broke(client, f"{request} -> {response.status_code} {response.text}")
    body = response.json()
    assert body["datasource"]["name"] == "cli_events" and not body.get("error"), broke(client, f"{request}: {body}")
    block = body["blocks"][0]["process_return"][0]
    assert block["parser"] != "clickhouse" and block["lines"] == 4, broke(client, f"{request}: {body}")
    assert rows(server, f"SELECT count() AS n FROM cli_events WHERE who = '{who}'") == [{"n": 4}]


# ------------------------------------------------------- tb CLI 5.x shapes


def test_tb_cli5_token_in_query_and_exact_content_types(server: LocalServer) -> None:
    """tb CLI 5.x puts `token=` (plus cli_version/from) in every query string, compares text/plain exactly, and
    expects JSON {"error"} for 400/403/404 everywhere but /v0/events."""
    client = "tb CLI 5.x (replayed)"
    extra = {"token": server.admin, "cli_version": "5.0.3 (rev ef090149)", "from": "cli", "__tb__semver": "0.0.1"}
    listed = httpx.get(f"{server.url}/v0/datasources", params=extra, timeout=30)
    assert listed.status_code == 200 and "cli_events" in {d["name"] for d in listed.json()["datasources"]}, broke(
        client, f"GET /v0/datasources?token=… -> {listed.status_code}"
    )
    for fmt, expected in [("TSV", "text/plain"), ("CSVWithNames", "text/csv"), ("JSONEachRow", "application/x-ndjson")]:
        answer = httpx.get(f"{server.url}/v0/sql", params={"q": f"SELECT 1 AS one FORMAT {fmt}", **extra}, timeout=30)
        assert answer.status_code == 200, broke(client, f"GET /v0/sql FORMAT {fmt} -> {answer.status_code}")
        assert answer.headers.get("content-type") == expected, broke(
            client, f"GET /v0/sql FORMAT {fmt} -> Content-Type {answer.headers.get('content-type')!r}"
        )
    for what, response, status in [
        ("unknown data source", httpx.get(f"{server.url}/v0/datasources/nope", params=extra), 404),
        ("bad SQL", httpx.get(f"{server.url}/v0/sql", params={**extra, "q": "SELECT nope FROM cli_events"}), 400),
        ("bad token", httpx.get(f"{server.url}/v0/datasources", params={**extra, "token": "p.nope"}), 403),
        ("unknown token", httpx.get(f"{server.url}/v0/tokens/nope", params=extra), 404),
    ]:
        assert response.status_code == status, broke(client, f"{what} -> {response.status_code} {response.text}")
        assert isinstance(response.json().get("error"), str), broke(client, f"{what} -> {response.text!r}")


def test_tb_cli5_local_and_telemetry_endpoints(server: LocalServer) -> None:
    """Local: GET /tokens (three keys), GET /v0/health 200; telemetry: GET /v0/regions without a telemetry_token
    (tb disables telemetry), and its POST /v0/events with a foreign token answered 403/404, never 5xx."""
    client = "tb CLI 5.x local/telemetry (replayed)"
    tokens = httpx.get(f"{server.url}/tokens", timeout=30)
    assert tokens.status_code == 200 and set(tokens.json()) == {"user_token", "admin_token", "workspace_admin_token"}
    health = httpx.get(f"{server.url}/v0/health", timeout=30)
    assert health.status_code == 200, broke(client, f"GET /v0/health -> {health.status_code}")
    regions = httpx.get(f"{server.url}/v0/regions", timeout=30).json()["regions"]
    assert regions and all("telemetry_token" not in r for r in regions), broke(client, f"GET /v0/regions: {regions}")
    telemetry = events(server, b'{"event": "tb_command"}', {"name": "tb_cli_telemetry", "token": "p.x"}, {})
    assert telemetry.status_code in (200, 202, 403, 404), broke(client, f"telemetry -> {telemetry.status_code}")


def test_tb_cli5_v1_append(server: LocalServer) -> None:
    client = "tb CLI 5.x datasource append (replayed)"
    body = json.dumps({"at": "2025-06-12 10:00:00", "who": "cli5_v1", "n": 1}).encode() + b"\n"
    response = httpx.post(
        f"{server.url}/v1/datasources/cli_events/append",
        params={"format": "ndjson", "token": server.admin, "cli_version": "5.0.3", "from": "cli"},
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
        timeout=30,
    )
    request = "POST /v1/datasources/cli_events/append?format=ndjson"
    assert response.status_code == 200, broke(client, f"{request} -> {response.status_code} {response.text!r}")
    job = response.json()
    assert isinstance(job.get("id"), str) and isinstance(job.get("import_id"), str), broke(client, f"{job}")
    assert job["status"] == "waiting" and job["kind"] == "import", broke(client, f"{request}: {job}")


def test_tb_cli5_jobs(server: LocalServer) -> None:
    client = "tb CLI 5.x jobs (replayed)"
    listed = httpx.get(f"{server.url}/v0/jobs", params={"token": server.admin}, timeout=30)
    assert listed.status_code == 200 and isinstance(listed.json().get("jobs"), list), broke(
        client, f"GET /v0/jobs -> {listed.status_code} {listed.text!r}"
    )


# ------------------------------------------------------- flock.js 1.7.0 and its middleware


def test_flock_preflight_any_origin(server: LocalServer) -> None:
    client = "flock.js (replayed preflight)"
    response = httpx.options(
        f"{server.url}/v0/events?name=analytics_events&token=p.x",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=30,
    )
    assert 200 <= response.status_code < 300, broke(client, f"OPTIONS -> {response.status_code}")
    assert response.headers.get("access-control-allow-origin") == "*", broke(client, f"{response.headers}")
    assert "POST" in response.headers.get("access-control-allow-methods", ""), broke(client, f"{response.headers}")
    assert response.headers.get("access-control-allow-headers", "").lower() == "content-type", broke(
        client, f"requested headers not echoed: {response.headers}"
    )
    assert response.headers.get("access-control-max-age") == "600", broke(client, f"{response.headers}")


def tracker(server: LocalServer) -> str:
    response = httpx.get(f"{server.url}/v0/tokens/tracker", headers=auth(server.admin), timeout=10)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def test_flock_17_event_shape(server: LocalServer) -> None:
    """flock.js 1.7.0: token in the query, `Content-Type: application/json`, one object with tenant_id/domain and
    `payload` as an object (→ JSON text in the String column), `timestamp` from toISOString()."""
    client = "flock.js 1.7.0 (replayed)"
    session = f"sess-{marker()}"
    # Recent: analytics_events has a 60-day TTL.
    now = datetime.now(UTC)
    event = {
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "action": "page_hit",
        "version": "1",
        "session_id": session,
        "tenant_id": "acme",
        "domain": "shop.example.com",
        "payload": {"pathname": "/pricing", "locale": "en-GB", "referrer": ""},
    }
    params = {"name": "analytics_events", "token": tracker(server)}
    headers = {"Content-Type": "application/json", "Origin": "https://shop.example.com"}
    response = events(server, json.dumps(event).encode(), params, headers)
    request = request_line("POST", params, headers)
    success_counts(client, request, response, 1)
    assert response.headers.get("access-control-allow-origin") == "*", broke(client, f"{request}: no CORS header")
    assert "Retry-After" in response.headers.get("access-control-expose-headers", ""), broke(
        client, f"{request}: {response.headers}"
    )
    found = wait_for_flushed_rows(
        server,
        "SELECT toString(timestamp) AS ts, payload, tenant_id, domain FROM analytics_events"
        f" WHERE session_id = '{session}'",
        lambda r: len(r) == 1,
    )
    assert found and found[0]["ts"] == now.strftime("%Y-%m-%d %H:%M:%S"), broke(client, f"{request}: rows {found}")
    assert json.loads(found[0]["payload"]) == event["payload"], broke(client, f"object payload into String: {found}")
    assert (found[0]["tenant_id"], found[0]["domain"]) == ("acme", "shop.example.com"), broke(client, f"{found}")


def test_flock_middleware_forward(server: LocalServer) -> None:
    """The starter kit's edge middleware forwards the browser's body raw with Bearer auth and reads
    `response.ok` then `response.json()`."""
    client = "flock.js middleware (replayed)"
    body = json.dumps(
        {
            "timestamp": "2025-06-12T10:15:30.000Z",
            "action": "page_hit",
            "version": "1",
            "session_id": f"mw-{marker()}",
            "payload": '{"pathname":"/"}',
        }
    ).encode()
    params = {"name": "analytics_events"}
    headers = {**auth(server.admin), "Content-Type": "application/json"}
    response = events(server, body, params, headers)
    success_counts(client, request_line("POST", params, headers), response, 1)


# ------------------------------------------------------- others: sim.ai, unkey, Ghost, polar, dub


def test_sim_ai_gzip_json(server: LocalServer) -> None:
    client = "sim.ai tinybird tool (replayed)"
    run = marker()
    body = "\n".join(json.dumps({"client": "simai", "id": run + i, "at": "2025-06-12 10:00:00"}) for i in range(2))
    params = {"name": "replayed_events", "wait": "true"}
    headers = {**auth(server.admin), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = events(server, gzip.compress(body.encode()), params, headers)
    success_counts(client, request_line("POST", params, headers), response, 2)
    assert rows(server, f"SELECT count() AS n FROM replayed_events WHERE client = 'simai' AND id >= {run}") == [
        {"n": 2}
    ], broke(client, "gzip + application/json rows not visible after wait=true")


def test_unkey_large_batch(server: LocalServer) -> None:
    """unkey's tinybird-proxy sends up to 100 000 rows per request (with wait=true) and reads the counts."""
    client = "unkey tinybird-proxy (replayed)"
    run = marker()
    body = "\n".join(
        json.dumps({"client": "unkey", "id": run + i, "at": "2025-06-12 10:00:00.000001", "payload": f"key_{i}"})
        for i in range(100_000)
    ).encode()
    params = {"name": "replayed_events", "wait": "true"}
    response = events(server, body, params, {**auth(server.admin), "Content-Type": "application/x-ndjson"})
    success_counts(client, f"POST /v0/events?name=replayed_events&wait=true ({len(body)} bytes)", response, 100_000)
    assert rows(server, f"SELECT count() AS n FROM replayed_events WHERE client = 'unkey' AND id >= {run}") == [
        {"n": 100_000}
    ], broke(client, "100 000 rows not all visible after wait=true")


@pytest.mark.parametrize("client", ["Ghost TrafficAnalytics", "polar", "dub"])
def test_wait_true_ndjson(server: LocalServer, client: str) -> None:
    run = marker()
    body = "\n".join(json.dumps({"client": "wait_true", "id": run + i, "at": "2025-06-12 10:00:00"}) for i in range(2))
    params = {"name": "replayed_events", "wait": "true"}
    headers = {**auth(server.admin), "Content-Type": "application/x-ndjson"}
    response = events(server, body.encode() + b"\n", params, headers)
    success_counts(f"{client} (replayed)", request_line("POST", params, headers), response, 2)
    assert response.status_code == 200, broke(f"{client} (replayed)", f"wait=true -> {response.status_code}")
