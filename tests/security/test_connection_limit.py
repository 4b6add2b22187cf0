"""The per-node connection limit (``server.max_connections``): the gate in
front of granian admits up to N connections and refuses the rest in their own
protocol (HTTP/1.1 503, HTTP/2 GOAWAY), over plain TCP and TLS; it keeps
connections spliced through a graceful shutdown and never outlives the server.
The first tests drive ``birdhouse.gate`` alone, in front of a tiny upstream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import h2.config
import h2.connection
import h2.events
import httpx
import psutil
import pytest

from birdhouse.config import load_settings
from birdhouse.gate import Gate, GateConfig
from tests.server import LocalServer

T = TypeVar("T")
SCHEMA = "i Int64 `json:$.i`"
GOAWAY, SETTINGS, PING = 0x7, 0x4, 0x6
REFUSED_STREAM = 0x7
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _parse_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, stream id, payload) of each complete HTTP/2 frame in data."""
    frames = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        frames.append((data[3], int.from_bytes(data[5:9], "big"), data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


def _goaway(frames: list[tuple[int, int, bytes]]) -> tuple[int, int, bytes]:
    """(last stream id, error code, debug data) of the first GOAWAY."""
    payload = next(p for kind, _, p in frames if kind == GOAWAY)
    return int.from_bytes(payload[:4], "big"), int.from_bytes(payload[4:8], "big"), payload[8:]


# ----------------------------------------------------------------- the gate alone


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo until EOF, then say bye and close: shows both half-closes pass."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write(b"bye")
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def _gate(handler: Handler = _echo, **options: object) -> AsyncIterator[Gate]:
    directory = tempfile.mkdtemp(prefix="gate-")  # short: sun_path holds 108 bytes
    path = os.path.join(directory, "up.sock")
    upstream = await asyncio.start_unix_server(handler, path)
    gate = Gate(GateConfig(host="127.0.0.1", port=0, upstream=path, **options))  # type: ignore[arg-type]
    await gate.start()
    try:
        yield gate
    finally:
        gate.stop_accepting()
        gate.abort_all()
        upstream.close()
        await asyncio.sleep(0.05)  # connection_lost callbacks and upstream handlers finish
        shutil.rmtree(directory, ignore_errors=True)


async def _admitted(gate: Gate) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"  # spliced to the echo upstream
    return reader, writer


async def _exchange(gate: Gate, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
    writer.write(request)
    async with asyncio.timeout(5):
        answer = await reader.read()  # until the gate's EOF
    writer.close()
    return answer


async def _settle(gate: Gate, admitted: int) -> None:
    async with asyncio.timeout(5):
        while (gate.admitted, gate.refusing, len(gate._clients)) != (admitted, 0, admitted):
            await asyncio.sleep(0.005)


def test_gate_splices_both_ways_with_half_close() -> None:
    async def run() -> bytes:
        async with _gate(max_connections=4) as gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
            writer.write(b"x" * 1_000_000)
            writer.write_eof()  # the echo sees EOF only if the gate passes it on
            async with asyncio.timeout(10):
                data = await reader.read()
            writer.close()
            return data

    assert asyncio.run(run()) == b"x" * 1_000_000 + b"bye"


def test_gate_refusal_frames_and_503_bytes() -> None:
    async def run() -> tuple[bytes, bytes]:
        async with _gate(max_connections=1) as gate:
            _, held = await _admitted(gate)  # holds the only slot
            client = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
            client.initiate_connection()
            h2_answer = await _exchange(gate, client.data_to_send())
            http1_answer = await _exchange(
                gate, b"POST /v0/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{}\n"
            )
            await _settle(gate, 1)  # the refused ones are gone once their clients closed
            held.close()
            return h2_answer, http1_answer

    h2_answer, http1_answer = asyncio.run(run())
    frames = _parse_frames(h2_answer)
    assert [(kind, stream) for kind, stream, _ in frames] == [(SETTINGS, 0), (GOAWAY, 0)]
    assert frames[0][2] == b""  # the server preface: an empty SETTINGS frame
    last_stream, code, debug = _goaway(frames)
    assert (last_stream, code) == (0, REFUSED_STREAM)
    assert b"at most 1 connections" in debug
    head, _, body = http1_answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Retry-After"] == "1"
    assert headers["Connection"] == "close"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert body == b"Too many connections: this node serves at most 1; retry later\n"
    assert int(headers["Content-Length"]) == len(body)


def test_gate_refusals_do_not_accumulate() -> None:
    """Hundreds of refusals in a row, then a flood of silent connections past
    max_refusing: the counts return to the admitted ones, nothing grows."""

    async def run() -> None:
        async with _gate(max_connections=2, max_refusing=8, refusal_deadline_s=1.0) as gate:
            held = [await _admitted(gate), await _admitted(gate)]
            for _ in range(300):
                assert (await _exchange(gate, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 503 ")
                await _settle(gate, 2)
            flood = [await asyncio.open_connection("127.0.0.1", gate.port) for _ in range(50)]
            async with asyncio.timeout(5):
                while gate.refused_total < 350:  # all 50 accepted
                    await asyncio.sleep(0.01)
            assert gate.refusing == 8  # at most max_refusing at once; the rest were reset on accept
            assert gate.admitted == 2
            # The silent ones get their 503 at the deadline and are dropped at
            # the next (they never close): nothing stays behind.
            await _settle(gate, 2)
            for _, writer in flood + held:
                writer.close()
            async with asyncio.timeout(5):
                await gate.idle.wait()
            assert gate.open_connections == 0

    asyncio.run(run())


def test_gate_does_not_buffer_what_the_upstream_does_not_read() -> None:
    """An upstream that stops reading: the gate stops reading the client, so
    its buffer stays at the transport's high-water mark, not the body size."""
    release = asyncio.Event()
    received = 0

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        try:
            await release.wait()
            while data := await reader.read(65536):
                received += len(data)
        finally:
            writer.close()

    async def run() -> tuple[int, int]:
        async with _gate(stalled, max_connections=1) as gate:
            _, writer = await asyncio.open_connection("127.0.0.1", gate.port)
            sent, chunk = 0, b"y" * 65536
            while sent < 64 * 1024 * 1024:
                writer.write(chunk)
                try:
                    async with asyncio.timeout(0.5):
                        await writer.drain()
                except TimeoutError:
                    break  # the client is blocked: backpressure reached it
                sent += len(chunk)
            (client,) = gate._clients
            assert client.peer is not None
            assert client.peer.transport is not None
            buffered = client.peer.transport.get_write_buffer_size()
            assert sent < 64 * 1024 * 1024
            release.set()
            await writer.drain()
            sent += len(chunk)
            writer.write_eof()
            async with asyncio.timeout(10):
                while received < sent:
                    await asyncio.sleep(0.01)
            writer.close()
            return buffered, sent

    buffered, sent = asyncio.run(run())
    assert buffered <= 1024 * 1024  # asyncio's high water (64 KiB) plus a read, not the megabytes sent
    assert received == sent  # and nothing was lost once the upstream read again


# ------------------------------------------------------------------ settings


def test_setting_flag_and_environment() -> None:
    from birdhouse.cli import _settings

    assert load_settings(environ={}).server.max_connections == 0  # off by default
    assert load_settings(environ={"BIRDHOUSE_SERVER__MAX_CONNECTIONS": "7"}).server.max_connections == 7
    assert _settings({"max_connections": 3}).server.max_connections == 3


# --------------------------------------------------------- a real server through the gate


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    running = LocalServer(Path(tmp_path_factory.mktemp("gate")) / "data", "--max-connections", "2")
    created = _until(
        lambda: httpx.post(
            f"{running.url}/v0/datasources",
            data={"name": "gated", "schema": SCHEMA},
            headers={"Authorization": f"Bearer {running.admin}"},
        )
    )
    assert created.status_code == 200
    yield running
    running.stop()


def _until(send: Callable[[], T], deadline_s: float = 5.0) -> T:
    """The first request of a new connection, retried while the slot of a
    connection that just closed has not been released yet (milliseconds)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            result = send()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        else:
            refused = isinstance(result, httpx.Response) and result.status_code == 503
            if not refused or time.monotonic() > deadline:
                return result
        time.sleep(0.02)


def _h2_request(sock: socket.socket, authority: str) -> list[tuple[int, int, bytes]]:
    """Send the HTTP/2 preface and a GET; return the frames until the peer closes."""
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    headers = [(":method", "GET"), (":path", "/v0/health"), (":scheme", "http"), (":authority", authority)]
    conn.send_headers(stream, headers, end_stream=True)
    sock.sendall(conn.data_to_send())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return _parse_frames(data)


def test_under_the_limit_http1_and_h2c_pass_and_rows_land(server: LocalServer) -> None:
    auth = {"Authorization": f"Bearer {server.admin}"}
    with httpx.Client(base_url=server.url, headers=auth) as http1:
        first = _until(lambda: http1.post("/v0/events?name=gated", content='{"i": 0}'))
        assert (first.status_code, first.http_version) == (202, "HTTP/1.1")
        assert [http1.post("/v0/events?name=gated", content=f'{{"i": {i}}}').status_code for i in range(9)] == [202] * 9

        async def h2c() -> list[int]:
            async with httpx.AsyncClient(http1=False, http2=True, base_url=server.url, headers=auth) as client:
                for _ in range(250):  # a refused connection raises (GOAWAY); the next try opens a new one
                    try:
                        await client.get("/v0/health")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.02)
                responses = await asyncio.gather(
                    *(client.post("/v0/events?name=gated", content=f'{{"i": {i}}}') for i in range(50))
                )
                assert {r.http_version for r in responses} == {"HTTP/2"}
                return [r.status_code for r in responses]

        assert asyncio.run(h2c()) == [202] * 50  # one connection (the second slot), many streams
        assert http1.post("/v0/events?name=gated&wait=true", content='{"i": -1}').status_code == 200
        count = http1.get("/v0/sql", params={"q": "SELECT count() c FROM gated"}).json()["data"]
    assert count == [{"c": 61}]


def test_over_the_limit_refused_then_admitted_again(server: LocalServer) -> None:
    held = [httpx.Client(base_url=server.url) for _ in range(2)]
    try:
        for client in held:  # two keep-alive connections: the limit
            assert _until(lambda client=client: client.get("/v0/health")).status_code == 200  # type: ignore[misc]
        refused = httpx.get(f"{server.url}/v0/health")
        assert refused.status_code == 503
        assert refused.headers["retry-after"].isdigit()
        assert refused.headers["connection"] == "close"
        assert "at most 2" in refused.text
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            frames = _h2_request(sock, f"127.0.0.1:{server.port}")
        assert _goaway(frames)[:2] == (0, REFUSED_STREAM)
        assert all(kind != 0x1 for kind, _, _ in frames)  # no HEADERS: the request never reached the app
        assert all(client.get("/v0/health").status_code == 200 for client in held)  # still served
    finally:
        for client in held:
            client.close()
    again = _until(lambda: httpx.get(f"{server.url}/v0/health"))
    assert again.status_code == 200


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_through_the_gate_and_refusal_by_alpn(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    options = ["--tls-cert", str(cert), "--tls-key", str(key), "--max-connections", "2"]
    server = LocalServer(tmp_path / "data", *options, scheme="https", verify=trusted)
    try:
        with (
            httpx.Client(http2=True, verify=trusted, base_url=server.url) as h2_client,
            httpx.Client(verify=trusted, base_url=server.url) as http1_client,
        ):
            health = _until(lambda: h2_client.get("/v0/health"))
            assert (health.status_code, health.http_version) == (200, "HTTP/2")  # ALPN at the gate
            health = _until(lambda: http1_client.get("/v0/health"))
            assert (health.status_code, health.http_version) == (200, "HTTP/1.1")
            refused = httpx.get(f"{server.url}/v0/health", verify=trusted)  # offers http/1.1 only
            assert refused.status_code == 503
            assert refused.headers["retry-after"].isdigit()
            h2_only = ssl.create_default_context(cafile=str(cert))
            h2_only.set_alpn_protocols(["h2"])
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
                h2_only.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
            ):
                assert sock.selected_alpn_protocol() == "h2"
                frames = _h2_request(sock, f"127.0.0.1:{server.port}")
            assert _goaway(frames)[:2] == (0, REFUSED_STREAM)
            assert h2_client.get("/v0/health").status_code == 200  # the admitted ones still work
            assert http1_client.get("/v0/health").status_code == 200
        with pytest.raises(httpx.HTTPError):  # TLS only, as without the gate
            httpx.get(f"http://127.0.0.1:{server.port}/v0/health", timeout=3)
    finally:
        server.stop()


def _gate_process(server: LocalServer) -> psutil.Process:
    (gate,) = [p for p in psutil.Process(server.process.pid).children() if "birdhouse.gate_process" in p.cmdline()]
    return gate


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # exited, not yet reaped by its new parent
    except psutil.NoSuchProcess:
        return True


def _group_alive(pgid: int, deadline_s: float = 3.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            members = [p for p in psutil.process_iter() if os.getpgid(p.pid) == pgid]
        except (ProcessLookupError, psutil.Error):
            continue  # a process vanished while listing: list again
        if all(_gone(p) for p in members):
            return False
        time.sleep(0.05)
    return True


def _h2_health(port: int, deadline_s: float = 5.0) -> socket.socket:
    """An HTTP/2 connection through the gate that has served GET /v0/health
    (retried while slots of just-closed connections are being released)."""
    deadline = time.monotonic() + deadline_s
    while True:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        headers = [
            (":method", "GET"),
            (":path", "/v0/health"),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{port}"),
        ]
        conn.send_headers(conn.get_next_available_stream_id(), headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        events: list[h2.events.Event] = []
        while not any(isinstance(e, h2.events.StreamEnded | h2.events.ConnectionTerminated) for e in events):
            data = sock.recv(65535)
            assert data, "the connection closed before the response"
            events += conn.receive_data(data)
        if not any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
            status = next(e for e in events if isinstance(e, h2.events.ResponseReceived)).headers
            assert (b":status", b"200") in status
            return sock
        sock.close()  # refused by the gate
        assert time.monotonic() < deadline, "no connection admitted"
        time.sleep(0.02)


def test_sigterm_goaway_through_the_gate_and_no_orphans(tmp_path: Path) -> None:
    server = LocalServer(tmp_path / "data", "--max-connections", "2")
    pgid = server.process.pid  # start_new_session: the server leads its own group
    try:
        _gate_process(server)  # the gate is a child of the server
        sock = _h2_health(server.port)
        with sock:
            server.process.terminate()  # SIGTERM to the server only, as a supervisor sends it
            started = time.monotonic()
            sock.settimeout(20)
            frames: list[tuple[int, int, bytes]] = []
            for frame in _frames_acking_pings(sock):  # as a live client does: then granian closes
                if frame[0] == GOAWAY and not frames:
                    # granian drains (its PING is not acknowledged yet) and the
                    # gate has stopped accepting: the kernel refuses new connections.
                    _assert_refused(server.port)
                frames.append(frame)
            assert server.process.wait(timeout=20) == 0
            # The gate left by itself once granian's connections closed; it is
            # not the server's 5 s kill deadline that ended it.
            assert time.monotonic() - started < 4
    finally:
        server.stop()
    goaway = _goaway(frames)
    assert goaway[1] == 0  # NO_ERROR: granian's graceful GOAWAY, spliced through
    assert not _group_alive(pgid), "a process of the server outlived it"


def _frames_acking_pings(sock: socket.socket) -> Iterator[tuple[int, int, bytes]]:
    """Frames until the peer closes; each PING is acknowledged after it is
    yielded: granian's graceful shutdown (GOAWAY + PING) waits for the
    acknowledgement before it closes the connection."""
    buffer = b""
    while chunk := sock.recv(65535):
        buffer += chunk
        while len(buffer) >= 9 and len(buffer) >= 9 + (length := int.from_bytes(buffer[:3], "big")):
            kind, flags, stream, payload = (
                buffer[3],
                buffer[4],
                int.from_bytes(buffer[5:9], "big"),
                buffer[9 : 9 + length],
            )
            buffer = buffer[9 + length :]
            yield kind, stream, payload
            if kind == PING and not flags & 0x1:
                sock.sendall(length.to_bytes(3, "big") + bytes((PING, 0x1)) + bytes(4) + payload)


def _assert_refused(port: int, deadline_s: float = 3.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.02)
    raise AssertionError("the gate still accepts connections after SIGTERM")


def test_gate_exits_when_the_server_is_killed(tmp_path: Path) -> None:
    server = LocalServer(tmp_path / "data", "--max-connections", "2")
    gate = _gate_process(server)
    private_dir = Path(json.loads(gate.cmdline()[-2])["upstream"]).parent  # granian's socket
    try:
        os.kill(server.process.pid, signal.SIGKILL)  # the server alone: no hook runs
        deadline = time.monotonic() + 5
        while not _gone(gate) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(gate), "the gate outlived the server"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)  # granian's worker, an orphan of its own
        server.stop()
        shutil.rmtree(private_dir, ignore_errors=True)  # a killed server cannot remove it
