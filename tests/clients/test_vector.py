"""Vector's `http` sink, replayed (SPEC §11 [Vector], §1.6): the configuration Tinybird's "ingest from Vector" guide
uses — `uri: <host>/v0/events?name=<ds>`, `auth.strategy: bearer`, `encoding.codec: json`,
`framing.method: newline_delimited` (→ `Content-Type: application/x-ndjson`) — with each `compression` setting."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Callable

import httpx
import pytest
import zstandard

from tests.clients.support import broke, rows, wait_for_flushed_rows
from tests.server import LocalServer

CLIENT = "Vector http sink (replayed)"
USER_AGENT = "Vector/0.48.0 (x86_64-unknown-linux-gnu 1e5ab1f 2025-06-30 14:05:12.123456789)"
COMPRESSIONS: dict[str, tuple[str | None, Callable[[bytes], bytes]]] = {
    "none": (None, lambda b: b),
    "gzip": ("gzip", gzip.compress),
    "zlib": ("deflate", zlib.compress),  # Vector's `zlib` sends a zlib stream as Content-Encoding: deflate
    "zstd": ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
}


def events(host: str, count: int) -> list[dict[str, str]]:
    """What Vector's file source + json codec produce (nanosecond RFC 3339 `timestamp`, Vector's own fields)."""
    return [
        {
            "file": "/var/log/app/access.log",
            "host": host,
            "message": f'127.0.0.1 - - [12/Jun/2025:10:15:3{n} +0000] "GET /api/items/{n} HTTP/1.1" 200 {512 + n} "-"'
            ' "curl/8.5.0"',
            "source_type": "file",
            "timestamp": f"2025-06-12T10:15:3{n}.{n + 1:03d}456789Z",
        }
        for n in range(count)
    ]


def send(server: LocalServer, body: bytes, encoding: str | None) -> httpx.Response:
    headers = {
        "Content-Type": "application/x-ndjson",
        "Authorization": f"Bearer {server.admin}",
        "User-Agent": USER_AGENT,
    }
    if encoding:
        headers["Content-Encoding"] = encoding
    return httpx.post(f"{server.url}/v0/events?name=vector_logs", content=body, headers=headers, timeout=30)


@pytest.mark.parametrize("compression", list(COMPRESSIONS))
def test_newline_delimited_batches(server: LocalServer, compression: str) -> None:
    encoding, compress = COMPRESSIONS[compression]
    host = f"vector-{compression}-{time.time_ns()}"
    batch = events(host, 3)
    # Vector's newline_delimited framing ends every event with \n.
    body = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in batch)
    response = send(server, compress(body), encoding)
    request = f"POST /v0/events?name=vector_logs (compression: {compression}, Content-Encoding: {encoding})"
    assert response.status_code == 202, broke(CLIENT, f"{request} -> {response.status_code} {response.text!r}")
    assert response.json() == {"successful_rows": 3, "quarantined_rows": 0}, broke(
        CLIENT, f"{request}: {response.text}"
    )
    found = wait_for_flushed_rows(
        server,
        f"SELECT toString(timestamp) AS ts, message, file FROM vector_logs WHERE host = '{host}' ORDER BY timestamp",
        lambda r: len(r) == 3,
    )
    assert [r["ts"] for r in found] == [f"2025-06-12 10:15:3{n}.{n + 1:03d}456789" for n in range(3)], broke(
        CLIENT, f"{request}: rows {found}"
    )
    assert [r["message"] for r in found] == [e["message"] for e in batch], broke(CLIENT, f"{request}: rows {found}")


def test_without_newline_framing_one_array_is_one_quarantined_row(server: LocalServer) -> None:
    """Without `framing.method: newline_delimited` Vector sends the batch as one JSON array (SPEC §1.5: one M8
    row unless events.expand_json_array_lines)."""
    batch = events(f"vector-array-{time.time_ns()}", 2)
    response = send(server, json.dumps(batch).encode(), None)
    assert response.status_code == 202, broke(CLIENT, f"JSON array body -> {response.status_code} {response.text!r}")
    assert response.json() == {"successful_rows": 0, "quarantined_rows": 1}, broke(
        CLIENT, f"JSON array body -> {response.text}"
    )


def test_snappy_is_refused(server: LocalServer) -> None:
    response = send(server, b"\xff\x06\x00\x00sNaPpY", "snappy")
    assert response.status_code == 415, broke(CLIENT, f"snappy -> {response.status_code} {response.text!r}")
    assert response.text == "Unsupported Content-Encoding 'snappy'\n", broke(CLIENT, f"snappy -> {response.text!r}")
    assert rows(server, "SELECT count() AS n FROM vector_logs WHERE host LIKE 'snappy%'") == [{"n": 0}]
