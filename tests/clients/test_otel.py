"""The OpenTelemetry collector-contrib tinybird exporter's requests, replayed from recorded bodies (SPEC §11 [OTel]).

tests/clients/recorded/otel_*.ndjson are what the exporter's Go `json.Encoder` writes for one batch per signal:
struct field order, sorted `map[string]string` attributes, `<>&` escaped, RFC 3339 timestamps with nanoseconds and
trailing zeros trimmed, every line ending in `\\n`. The exporter POSTs them zstd-compressed (confighttp's default)
to `<endpoint>/v0/events?name=<ds>[&wait=true]` with the headers below; the datafiles follow the exporter's fields
(tests/clients/datafiles/{traces,logs,metrics_gauge}.datasource)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import zstandard

from tests.clients.support import RECORDED, broke, rows, wait_for_flushed_rows
from tests.server import LocalServer

CLIENT = "OpenTelemetry collector-contrib tinybird exporter (replayed)"
USER_AGENT = "OpenTelemetry Collector Contrib/0.131.0 (linux/amd64)"
SIGNALS = [("traces", "otel_traces"), ("logs", "otel_logs"), ("metrics_gauge", "otel_metrics_gauge")]


def recorded(name: str) -> bytes:
    return (RECORDED / f"{name}.ndjson").read_bytes()


def export(server: LocalServer, datasource: str, body: bytes, wait: bool) -> httpx.Response:
    params = {"name": datasource, **({"wait": "true"} if wait else {})}
    return httpx.post(
        f"{server.url}/v0/events",
        params=params,
        content=zstandard.ZstdCompressor(level=3).compress(body),
        headers={
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "zstd",
            "Authorization": f"Bearer {server.admin}",
            "User-Agent": USER_AGENT,
        },
        timeout=30,
    )


def nanos(rfc3339: str) -> str:
    """What a DateTime64(9) shows for an RFC 3339 UTC timestamp: 'YYYY-MM-DD hh:mm:ss.fffffffff'."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", rfc3339)
    assert match, rfc3339
    return f"{match[1]} {match[2]}.{(match[3] or '').ljust(9, '0')}"


@pytest.fixture(scope="module")
def exported(server: LocalServer) -> dict[str, httpx.Response]:
    """One export per signal. The exporter's `wait` option: traces and logs with wait=true (200 once committed),
    gauge with the default (202)."""
    return {ds: export(server, ds, recorded(name), wait=ds != "metrics_gauge") for ds, name in SIGNALS}


@pytest.mark.parametrize(("datasource", "name"), SIGNALS)
def test_exporter_request_is_accepted(
    server: LocalServer, exported: dict[str, httpx.Response], datasource: str, name: str
) -> None:
    lines = recorded(name).decode().splitlines()
    wait = datasource != "metrics_gauge"
    response = exported[datasource]
    request = f"POST /v0/events?name={datasource}{'&wait=true' if wait else ''} (zstd, {len(lines)} lines)"
    assert response.status_code == (200 if wait else 202), broke(
        CLIENT, f"{request} -> {response.status_code} {response.text!r}"
    )
    assert response.json() == {"successful_rows": len(lines), "quarantined_rows": 0}, broke(
        CLIENT, f"{request} -> {response.text!r}"
    )
    assert rows(server, f"SELECT count() AS n FROM {datasource}_quarantine") == [{"n": 0}], broke(
        CLIENT, f"{request}: rows went to quarantine: {rows(server, f'SELECT * FROM {datasource}_quarantine')}"
    )


def expect(server: LocalServer, query: str, count: int) -> list[dict[str, Any]]:
    found = wait_for_flushed_rows(server, query, lambda r: len(r) == count)
    assert len(found) == count, broke(CLIENT, f"{query} -> {found}")
    return found


@pytest.mark.usefixtures("exported")
def test_traces_keep_nanoseconds_and_maps(server: LocalServer) -> None:
    spans = [json.loads(line) for line in recorded("otel_traces").decode().splitlines()]
    found = expect(
        server,
        "SELECT span_id, toString(start_time) AS start, toString(end_time) AS end, duration, span_attributes,"
        " resource_attributes, arrayMap(t -> toString(t), events_timestamp) AS events, events_attributes,"
        " links_trace_id, status_code, status_message, span_kind"
        " FROM traces WHERE trace_id = '6f9c2b1e4a8d3f7c0b5e9a2d4c6f8e10' ORDER BY start_time",
        len(spans),
    )
    for span, row in zip(spans, found, strict=True):
        what = f"span {span['span_id']} ({span['span_name']})"
        assert row["start"] == nanos(span["start_time"]), broke(CLIENT, f"{what} start_time: {row['start']}")
        assert row["end"] == nanos(span["end_time"]), broke(CLIENT, f"{what} end_time: {row['end']}")
        assert int(row["duration"]) == span["duration"], broke(CLIENT, f"{what} duration: {row['duration']}")
        assert row["span_attributes"] == span["span_attributes"], broke(CLIENT, f"{what} span_attributes")
        assert row["resource_attributes"] == span["resource_attributes"], broke(CLIENT, f"{what} resource_attributes")
        assert row["events"] == [nanos(t) for t in span["events_timestamp"]], broke(CLIENT, f"{what} events")
        assert row["events_attributes"] == span["events_attributes"], broke(CLIENT, f"{what} events_attributes")
        assert row["links_trace_id"] == span["links_trace_id"], broke(CLIENT, f"{what} links")
        assert (row["status_code"], row["status_message"], row["span_kind"]) == (
            span["status_code"],
            span["status_message"],
            span["span_kind"],
        ), broke(CLIENT, f"{what} status/kind: {row}")
    # `<` `>` `&` arrive unescaped (Go wrote \u003c … in the JSON).
    assert "<test> & co" in found[0]["span_attributes"]["user_agent.original"], broke(CLIENT, "escaped characters")


@pytest.mark.usefixtures("exported")
def test_logs_keep_nanoseconds_and_maps(server: LocalServer) -> None:
    records = [json.loads(line) for line in recorded("otel_logs").decode().splitlines()]
    found = expect(
        server,
        "SELECT toString(timestamp) AS ts, body, log_attributes, severity_text, severity_number, trace_id, flags"
        " FROM logs ORDER BY timestamp",
        len(records),
    )
    for record, row in zip(records, found, strict=True):
        assert row["ts"] == nanos(record["timestamp"]), broke(CLIENT, f"log timestamp {record['timestamp']}: {row}")
        assert row["body"] == record["body"], broke(CLIENT, f"log body: {row}")
        assert row["log_attributes"] == record["log_attributes"], broke(CLIENT, f"log_attributes: {row}")
        assert (row["severity_text"], row["severity_number"], row["trace_id"], row["flags"]) == (
            record["severity_text"],
            record["severity_number"],
            record["trace_id"],
            record["flags"],
        ), broke(CLIENT, f"log fields: {row}")


@pytest.mark.usefixtures("exported")
def test_gauge_keeps_nanoseconds_values_and_exemplars(server: LocalServer) -> None:
    points = [json.loads(line) for line in recorded("otel_metrics_gauge").decode().splitlines()]
    found = expect(
        server,
        "SELECT metric_name, toString(start_timestamp) AS start, toString(timestamp) AS ts, value,"
        " metric_attributes, arrayMap(t -> toString(t), exemplars_timestamp) AS ex_ts, exemplars_value"
        " FROM metrics_gauge ORDER BY timestamp",
        len(points),
    )
    for point, row in zip(points, found, strict=True):
        what = f"gauge {point['metric_name']}"
        assert row["ts"] == nanos(point["timestamp"]), broke(CLIENT, f"{what} timestamp: {row}")
        assert row["start"] == nanos(point["start_timestamp"]), broke(CLIENT, f"{what} start_timestamp: {row}")
        assert float(row["value"]) == point["value"], broke(CLIENT, f"{what} value: {row}")
        assert row["metric_attributes"] == point["metric_attributes"], broke(CLIENT, f"{what} attributes: {row}")
        assert row["ex_ts"] == [nanos(t) for t in point["exemplars_timestamp"]], broke(CLIENT, f"{what}: {row}")
        assert row["exemplars_value"] == point["exemplars_value"], broke(CLIENT, f"{what} exemplars: {row}")


def test_errors_are_permanent_or_retryable_as_the_exporter_expects(server: LocalServer) -> None:
    """4xx (other than 429) are permanent for the exporter; a bad token must be one of them, never a 5xx."""
    response = httpx.post(
        f"{server.url}/v0/events?name=traces",
        content=zstandard.ZstdCompressor().compress(recorded("otel_traces")),
        headers={"Content-Encoding": "zstd", "Authorization": "Bearer p.wrong", "User-Agent": USER_AGENT},
        timeout=30,
    )
    assert response.status_code == 403, broke(CLIENT, f"bad token -> {response.status_code} {response.text!r}")
    corrupt = httpx.post(
        f"{server.url}/v0/events?name=traces",
        content=b"\x28\xb5\x2f\xfd garbage",
        headers={"Content-Encoding": "zstd", "Authorization": f"Bearer {server.admin}", "User-Agent": USER_AGENT},
        timeout=30,
    )
    assert corrupt.status_code == 400 and corrupt.text == "Invalid zstd body\n", broke(
        CLIENT, f"corrupt zstd -> {corrupt.status_code} {corrupt.text!r}"
    )
