"""A recording reverse proxy in front of a birdhouse server.

Real clients talk to the proxy; it forwards every request unchanged to birdhouse and keeps what went by (method,
path, headers, body, status, response headers and body), so a test can assert what a client sent and what it got
back, and name the request that broke when one did.
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    def header(self, name: str) -> str | None:
        """A request header, matched case-insensitively."""
        return _lookup(self.headers, name)

    def response_header(self, name: str) -> str | None:
        """A response header, matched case-insensitively."""
        return _lookup(self.response_headers, name)

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def describe(self) -> str:
        """One line naming the request and what came back, for failure messages."""
        path = re.sub(r"token=[^&]+", "token=<t>", self.path)
        shown = path if len(path) < 300 else path[:300] + "…"
        answer = self.response_body[:300].decode("utf-8", "replace")
        return f"{self.method} {shown} -> {self.status} {answer!r}"


def _lookup(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                else:
                    body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                exchange = Exchange(self.command, self.path, dict(self.headers.items()), body)
                forwarded = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "host")}
                forwarded["Content-Length"] = str(len(body))
                forwarded["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=forwarded)
                    response = conn.getresponse()
                    payload = response.read()
                    exchange.status = response.status
                    exchange.response_headers = dict(response.getheaders())
                    exchange.response_body = payload
                finally:
                    conn.close()
                with proxy._lock:
                    proxy.exchanges.append(exchange)
                self.send_response_only(exchange.status)
                for key, value in exchange.response_headers.items():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _read_chunked(self) -> bytes:
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="recording-proxy", daemon=True)
        self._thread.start()

    def recorded(self, method: str | None = None, route: str | None = None) -> list[Exchange]:
        with self._lock:
            found = list(self.exchanges)
        return [
            e
            for e in found
            if (method is None or e.method == method) and (route is None or e.route.rstrip("/") == route.rstrip("/"))
        ]

    def clear(self) -> None:
        with self._lock:
            self.exchanges.clear()

    def log(self) -> str:
        """Every request that went by, one a line."""
        with self._lock:
            return "\n".join(e.describe() for e in self.exchanges)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
