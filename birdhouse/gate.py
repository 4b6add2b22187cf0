"""Connection gate: a per-node cap on open client connections, in front of granian.

granian cannot refuse a connection: its ``backpressure`` only stops accepting,
so excess connections wait in the kernel backlog, and the ASGI app sees
requests, never connections. With ``server.max_connections`` > 0,
``birdhouse local|serve`` runs this gate (``birdhouse.gate_process``) on the public
host:port while granian listens on a private Unix socket. Each accepted
connection is either

* **admitted** (fewer than ``max_connections`` admitted connections are open):
  the gate connects to granian's socket and splices bytes both ways with
  asyncio protocols. A side stops reading while the other side's write buffer
  is above its high-water mark, so the gate holds at most the transports'
  buffers, never a request body; a client's EOF is passed on as a half-close,
  granian's EOF closes the connection, and when one side closes the other is
  closed once its buffer is written; or
* **refused**, in just enough HTTP to be understood: the first bytes (at most
  ``MAX_HEAD_BYTES``, within ``refusal_deadline_s``) decide. The HTTP/2 client
  preface gets the server's SETTINGS frame and a GOAWAY (last-stream-id 0,
  REFUSED_STREAM: no stream was processed, every request may be retried);
  anything else gets ``503`` with an integer ``Retry-After`` and
  ``Connection: close``. At most ``max_refusing`` refusals run at once; past
  that a connection is reset on accept, so a flood costs bounded memory.

With TLS the gate terminates it (ALPN h2, http/1.1) and forwards plaintext; a
refusal follows the negotiated protocol. Through the gate the app sees the
gate, not the client, as the peer address.

Shutdown: SIGTERM or SIGINT closes the listener (new connections are refused
by the kernel) while admitted connections stay spliced until granian closes
them, so its graceful GOAWAY reaches HTTP/2 clients. The gate exits when no
connection is left, after ``drain_s``, or as soon as its parent is gone.

Cost: every byte crosses one more process and a Python event loop, which is
why the gate is opt-in (docs/security.md has the measured throughput).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("birdhouse.gate")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# RFC 9113 §7. REFUSED_STREAM ("refused the stream prior to performing any
# application processing") says what happened and that a retry is safe;
# ENHANCE_YOUR_CALM would blame a client that merely arrived when the node is full.
H2_REFUSED_STREAM = 0x7
MAX_HEAD_BYTES = 16384


def _h2_frame(kind: int, payload: bytes) -> bytes:
    # RFC 9113 §4.1: length (24 bits), type, flags, reserved bit + stream id (31 bits), payload.
    return len(payload).to_bytes(3, "big") + bytes((kind, 0)) + bytes(4) + payload


def h2_refusal(max_connections: int) -> bytes:
    """The server connection preface, an empty SETTINGS frame (RFC 9113 §3.4,
    §6.5), then GOAWAY (§6.8) with last-stream-id 0 and REFUSED_STREAM."""
    debug = f"connection limit: this node serves at most {max_connections} connections".encode()
    return _h2_frame(0x4, b"") + _h2_frame(0x7, bytes(4) + H2_REFUSED_STREAM.to_bytes(4, "big") + debug)


def http1_refusal(max_connections: int, retry_after_s: int) -> bytes:
    body = f"Too many connections: this node serves at most {max_connections}; retry later\n".encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {retry_after_s}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass(frozen=True)
class GateConfig:
    host: str
    port: int
    upstream: str  # granian's Unix socket
    max_connections: int
    retry_after_s: int = 1
    tls_cert: str = ""
    tls_key: str = ""
    refusal_deadline_s: float = 2.0
    # Admitted TLS handshakes and upstream connects hold a slot at most this long.
    setup_timeout_s: float = 10.0
    drain_s: float = 30.0
    max_refusing: int = 256
    log_level: str = "info"
    log_format: str = "text"


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    context.minimum_version = ssl.TLSVersion.TLSv1_3  # granian's default when it terminates TLS itself
    return context


class Gate:
    """The listener and its accounting (one event loop, no locks)."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.admitted = 0  # open admitted connections, from accept to close
        self.refusing = 0  # refusals in progress
        self.refused_total = 0
        self.tls = tls_context(config.tls_cert, config.tls_key) if config.tls_cert else None
        self.h2_refusal = h2_refusal(config.max_connections)
        self.http1_refusal = http1_refusal(config.max_connections, config.retry_after_s)
        self.idle = asyncio.Event()
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._warned_at = -1e9

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Client(self), self.config.host, self.config.port, backlog=1024)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def open_connections(self) -> int:
        return self.admitted + self.refusing

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()  # listening sockets only: open connections stay

    def abort_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        for client in list(self._clients):
            client.abort()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def note_refusal(self) -> None:
        self.refused_total += 1
        now = asyncio.get_running_loop().time()
        if now - self._warned_at >= 10:
            self._warned_at = now
            log.warning(
                "connection limit %d reached: refusing new connections (%d refused so far)",
                self.config.max_connections,
                self.refused_total,
            )

    def track(self, client: _Client) -> None:
        self._clients.add(client)
        self.idle.clear()

    def untrack(self, client: _Client) -> None:
        self._clients.discard(client)
        if not self._clients:
            self.idle.set()


class _End(asyncio.Protocol):
    """One side of a spliced connection: what it receives goes to its peer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _End | None = None
        self.eof = False

    def _peer_transport(self) -> asyncio.Transport | None:
        return self.peer.transport if self.peer is not None else None

    def data_received(self, data: bytes) -> None:
        peer = self._peer_transport()
        if peer is not None and not peer.is_closing():
            peer.write(data)

    # Flow control: our transport's write buffer is full, so stop reading the
    # side that fills it; the kernel buffers, then TCP, push back on the sender.
    def pause_writing(self) -> None:
        peer = self._peer_transport()
        if peer is not None:
            peer.pause_reading()

    def resume_writing(self) -> None:
        peer = self._peer_transport()
        if peer is not None and not peer.is_closing():
            peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self._peer_transport()
        if peer is not None and not peer.is_closing():
            peer.close()  # after its write buffer is flushed

    def abort(self) -> None:
        for transport in (self.transport, self._peer_transport()):
            if transport is not None:
                transport.abort()


class _Upstream(_End):
    def __init__(self, client: _Client) -> None:
        super().__init__()
        self.peer = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def eof_received(self) -> bool:
        # granian is done with a connection when it sends EOF (an HTTP server
        # half-closes only to close): close the client once its buffer is written.
        peer = self._peer_transport()
        if peer is not None and not peer.is_closing():
            peer.close()
        return False


class _Client(_End):
    """A client connection: admitted (spliced to granian) or refused."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate
        self.kind = ""  # "admitted" | "refusing" while counted, "" before and after
        self.state = "setup"  # setup → spliced | refusing → answered; closed
        self.pending: list[bytes] = []
        self.head = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.alpn_h2 = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        gate, config = self.gate, self.gate.config
        if gate.admitted < config.max_connections:
            self.kind = "admitted"
            gate.admitted += 1
        elif gate.refusing < config.max_refusing:
            self.kind = "refusing"
            gate.refusing += 1
            gate.note_refusal()
        else:
            gate.note_refusal()
            transport.abort()  # a reset: refusals are bounded, so is their memory
            return
        gate.track(self)
        log.debug("accepted %s: %d admitted, %d refusing", self.kind, gate.admitted, gate.refusing)
        if self.kind == "refusing" and gate.tls is None:
            self._refuse()
            return
        transport.pause_reading()  # nothing is read before TLS or the upstream is ready
        gate.spawn(self._setup())

    async def _setup(self) -> None:
        gate, config = self.gate, self.gate.config
        loop = asyncio.get_running_loop()
        raw = self.transport
        assert raw is not None
        admitted = self.kind == "admitted"
        try:
            if gate.tls is not None:
                if raw.is_closing():
                    return
                tls = await loop.start_tls(
                    raw,
                    self,
                    gate.tls,
                    server_side=True,
                    ssl_handshake_timeout=config.setup_timeout_s if admitted else config.refusal_deadline_s,
                    ssl_shutdown_timeout=config.refusal_deadline_s,
                )
                if tls is None or tls.is_closing() or self.state == "closed":
                    return  # connection_lost has run or will run
                self.transport = tls
                if not admitted:
                    ssl_object = tls.get_extra_info("ssl_object")
                    self.alpn_h2 = ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"
                    self._refuse()
                    return
                tls.pause_reading()
            upstream = _Upstream(self)
            async with asyncio.timeout(config.setup_timeout_s):
                while True:
                    try:
                        await loop.create_unix_connection(lambda: upstream, config.upstream)
                        break
                    except (ConnectionRefusedError, FileNotFoundError):
                        # granian's worker is starting (or respawning): wait for it, do not reset.
                        await asyncio.sleep(0.05)
                        if self.state == "closed":
                            return
        except Exception as exc:  # whatever failed, the slot must not leak
            log.debug("connection setup failed: %r", exc)
            self.abort()
            self._release()
            return
        self._splice(upstream)

    def _splice(self, upstream: _Upstream) -> None:
        assert upstream.transport is not None
        assert self.transport is not None
        if self.state == "closed":
            upstream.transport.close()
            return
        self.peer, self.state = upstream, "spliced"
        for chunk in self.pending:
            upstream.transport.write(chunk)
        self.pending.clear()
        if self.eof:
            upstream.transport.write_eof()
        else:
            self.transport.resume_reading()

    def _refuse(self) -> None:
        assert self.transport is not None
        self.state = "refusing"
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.gate.config.refusal_deadline_s, self._on_deadline)
        pending, self.pending = self.pending, []
        for chunk in pending:  # TLS: bytes decoded while the handshake finished
            self.data_received(chunk)
        if self.state == "refusing":
            self.transport.resume_reading()

    def _looks_h2(self) -> bool:
        return self.alpn_h2 or (bool(self.head) and H2_PREFACE.startswith(bytes(self.head)))

    def _on_deadline(self) -> None:
        if self.state == "refusing":
            self._answer(self._looks_h2())
        elif self.transport is not None:
            self.transport.abort()

    def _answer(self, h2: bool) -> None:
        assert self.transport is not None
        if self.timer is not None:
            self.timer.cancel()
        self.state = "answered"
        self.transport.write(self.gate.h2_refusal if h2 else self.gate.http1_refusal)
        if self.transport.can_write_eof():
            # Plain TCP: FIN after the answer, then keep reading (and dropping)
            # until the client closes: closing with unread request bytes would
            # send a reset that can destroy the answer before the client reads it.
            self.transport.write_eof()
            self.timer = asyncio.get_running_loop().call_later(
                self.gate.config.refusal_deadline_s, self.transport.abort
            )
        else:
            self.transport.close()  # TLS: close_notify; the shutdown reads until the client's

    def data_received(self, data: bytes) -> None:
        if self.state == "spliced":
            super().data_received(data)
        elif self.state == "setup":
            # TLS: what the handshake's last read decrypted, delivered before
            # start_tls() returns (self.transport is still the raw socket, so
            # it must not be paused here); _setup() pauses the TLS transport.
            self.pending.append(data)
        elif self.state == "refusing":
            self.head += data[: MAX_HEAD_BYTES - len(self.head)]
            head = bytes(self.head)
            if head.startswith(H2_PREFACE):
                self._answer(h2=True)
            elif not H2_PREFACE.startswith(head) and (
                b"\r\n\r\n" in head or b"\n\n" in head or len(head) >= MAX_HEAD_BYTES
            ):
                self._answer(h2=False)

    def eof_received(self) -> bool:
        self.eof = True
        if self.state == "spliced":
            # The client half-closed: pass it on and keep reading the response
            # (a TLS transport cannot half-close: then the connection ends).
            upstream = self._peer_transport()
            assert self.transport is not None
            if upstream is None or upstream.is_closing():
                return False
            if not (self.transport.can_write_eof() and upstream.can_write_eof()):
                upstream.close()
                return False
            upstream.write_eof()
            return True
        if self.state == "refusing":
            self._answer(self._looks_h2())
            return False
        return False  # setup (TLS close_notify before the upstream connected) or answered: done

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = "closed"
        if self.timer is not None:
            self.timer.cancel()
        super().connection_lost(exc)
        self._release()

    def _release(self) -> None:
        gate = self.gate
        if self.kind == "admitted":
            gate.admitted -= 1
        elif self.kind == "refusing":
            gate.refusing -= 1
        if self.kind:
            log.debug("closed %s: %d admitted, %d refusing", self.kind, gate.admitted, gate.refusing)
        self.kind = ""
        gate.untrack(self)
