"""HTTP/2 against a real `birdhouse local` (granian): h2c with prior
knowledge, many streams on one connection, graceful GOAWAY on shutdown, and
h2 over TLS when a certificate is configured."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from tests.server import LocalServer

SCHEMA = "i Int64 `json:$.i`"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    running = LocalServer(Path(tmp_path_factory.mktemp("h2")) / "data")
    created = httpx.post(
        f"{running.url}/v0/datasources",
        data={"name": "h2", "schema": SCHEMA},
        headers={"Authorization": f"Bearer {running.admin}"},
    )
    assert created.status_code == 200
    yield running
    running.stop()


def test_h2c_prior_knowledge_many_streams_one_connection(server: LocalServer) -> None:
    async def run() -> list[int]:
        async with httpx.AsyncClient(
            http1=False, http2=True, base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}
        ) as client:
            responses = await asyncio.gather(
                *(client.post("/v0/events?name=h2", content=f'{{"i": {i}}}') for i in range(100))
            )
            assert {r.http_version for r in responses} == {"HTTP/2"}
            count = await client.get("/v0/sql", params={"q": "SELECT count() c FROM h2"})
            assert count.http_version == "HTTP/2"
            return [r.status_code for r in responses]

    assert asyncio.run(run()) == [202] * 100
    # One TCP connection carried all of them (httpx multiplexes streams on it).
    confirm = httpx.post(
        f"{server.url}/v0/events?name=h2&wait=true",
        content='{"i": -1}',
        headers={"Authorization": f"Bearer {server.admin}"},
    )
    assert confirm.status_code == 200
    rows = httpx.get(
        f"{server.url}/v0/sql",
        params={"q": "SELECT count() c FROM h2"},
        headers={"Authorization": f"Bearer {server.admin}"},
    ).json()["data"]
    assert rows == [{"c": 101}]


def _h2_connect(port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _frames(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """Raw HTTP/2 frames (type, payload) until the peer closes: after a GOAWAY
    h2's state machine refuses further input, but the frames are what we check."""
    buffer = b""
    while True:
        data = sock.recv(65535)
        if not data:
            return
        buffer += data
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            yield buffer[3], buffer[9 : 9 + length]
            buffer = buffer[9 + length :]


def test_graceful_goaway_on_shutdown(tmp_path: Path) -> None:
    server = LocalServer(tmp_path / "data")
    sock, conn = _h2_connect(server.port)
    try:
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [
                (":method", "GET"),
                (":path", "/v0/health"),
                (":scheme", "http"),
                (":authority", f"127.0.0.1:{server.port}"),
            ],
            end_stream=True,
        )
        sock.sendall(conn.data_to_send())
        events: list[h2.events.Event] = []
        while not any(isinstance(e, h2.events.StreamEnded) for e in events):
            events += conn.receive_data(sock.recv(65535))
        status = next(e for e in events if isinstance(e, h2.events.ResponseReceived)).headers
        assert (b":status", b"200") in status
        # SIGTERM: the open connection must be told to go away, not reset.
        server.process.terminate()
        sock.settimeout(30)
        goaway = next((payload for kind, payload in _frames(sock) if kind == 0x7), None)
    finally:
        sock.close()
        server.stop()
    assert goaway is not None, "the server closed the HTTP/2 connection without a GOAWAY frame"
    assert int.from_bytes(goaway[4:8], "big") == 0  # error code NO_ERROR: a graceful shutdown


def test_h2_over_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    server = LocalServer(
        tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key), scheme="https", verify=trusted
    )
    try:
        with httpx.Client(http2=True, verify=trusted, base_url=server.url) as client:
            health = client.get("/v0/health")
            assert health.status_code == 200
            assert health.http_version == "HTTP/2"  # negotiated by ALPN
            assert server.url.startswith("https://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/v0/health", timeout=3)
    finally:
        server.stop()
