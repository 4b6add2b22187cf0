"""GET /metrics, request ids and structured logs (operator experience)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

import pytest

from birdhouse.logs import JsonFormatter, configure_logging, request_id
from tests.http.conftest import Local


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_counters_move_by_the_right_amounts(local: Local) -> None:
    local.create_datasource("events", "a Int32 `json:$.a`")
    before = local.client.get("/metrics").text
    body = b'{"a":1}\n{"a":2}\n{"a":"x"}\n'
    for _ in range(3):
        assert local.client.post("/v0/events?name=events", content=body, headers=local.auth()).status_code == 202
    local.drain()
    after = local.client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = after.text
    labels = 'workspace="Tinybird_Local_Testing",datasource="events",result="{}"'
    assert metric(text, "birdhouse_events_rows_total", labels.format("ok")) == 6
    assert metric(text, "birdhouse_events_rows_total", labels.format("quarantined")) == 3
    assert metric(
        text, "birdhouse_events_bytes_total", 'workspace="Tinybird_Local_Testing",datasource="events"'
    ) == 3 * len(body)
    route = 'route="/v0/events",method="POST",status="202"'
    assert (
        metric(text, "birdhouse_http_requests_total", route) - metric(before, "birdhouse_http_requests_total", route)
        == 3
    )
    assert metric(text, "birdhouse_flush_rows_total", 'result="ok"') == 6
    assert metric(text, "birdhouse_flush_duration_seconds_count") >= 1
    assert metric(text, "birdhouse_wal_fsyncs") >= 3
    assert "birdhouse_wal_bytes " in text and "birdhouse_backend_down_seconds 0" in text
    # Route labels are templates, never raw paths (bounded cardinality).
    local.client.get("/v0/datasources/nope", headers=local.auth())
    assert 'route="/v0/datasources/{name}",method="GET",status="404"' in local.client.get("/metrics").text


def test_rate_limit_rejections_are_counted(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"limits.workspace_rps": 1, "limits.workspace_burst": 1})
    local.create_datasource("events", "a Int32 `json:$.a`")
    statuses = [
        local.client.post("/v0/events?name=events", content=b'{"a":1}', headers=local.auth()).status_code
        for _ in range(3)
    ]
    assert statuses == [202, 429, 429]
    assert metric(local.client.get("/metrics").text, "birdhouse_rate_limited_total", 'reason="rate"') == 2


def test_metrics_token(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"server.metrics_token": "scrape-me"})
    assert local.client.get("/metrics").status_code == 403
    assert local.client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200


def test_request_id_header(local: Local) -> None:
    generated = local.client.get("/v0/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert local.client.get("/v0/health", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    hostile = local.client.get("/v0/health", headers={"X-Request-Id": "a b\tc" * 50}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", hostile)


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("birdhouse.events", logging.WARNING, __file__, 1, "WAL refused %s", ("x",), None)
    record.request_id = "req-1"  # what the handler's filter sets from the context variable
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-1"
    assert line["level"] == "warning" and line["message"] == "WAL refused x" and line["ts"].endswith("Z")


def test_configure_logging_emits_json_with_request_id(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    token = request_id.set("req-2")
    try:
        logging.getLogger("birdhouse.test").info("hello %s", "world")
    finally:
        request_id.reset(token)
        logging.getLogger("birdhouse").handlers.clear()
        logging.getLogger("birdhouse").propagate = True
    line = json.loads(capfd.readouterr().err.strip().splitlines()[-1])
    assert line == {**line, "message": "hello world", "request_id": "req-2", "logger": "birdhouse.test"}
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml")


def test_events_dispatched_directly_keep_the_request_context(local: Local) -> None:
    """POST /v0/events skips the router (middleware.py): it must still carry the
    request id, count under its route template, and answer both path spellings."""
    local.create_datasource("events", "a Int32 `json:$.a`")
    for path in ("/v0/events?name=events", "/v0/events/?name=events"):
        response = local.client.post(path, content=b'{"a":1}', headers={**local.auth(), "X-Request-Id": "rid-1"})
        assert response.status_code == 202, response.text
        assert response.headers["x-request-id"] == "rid-1"
    refused = local.client.post("/v0/events?name=events", content=b'{"a":1}', headers={"Origin": "https://x.example"})
    assert refused.status_code == 403 and refused.headers["access-control-allow-origin"] == "*"
    assert refused.headers["x-request-id"]
    text = local.client.get("/metrics").text
    assert 'route="/v0/events",method="POST",status="202"' in text
    assert 'route="/v0/events/",method="POST",status="202"' in text
    assert 'route="/v0/events",method="POST",status="403"' in text
