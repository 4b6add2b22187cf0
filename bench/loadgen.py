"""A small, fast HTTP/1.1 load generator (asyncio protocols, keep-alive, pre-built requests).

Run as its own process (``python -m bench.loadgen SPEC.json OUT.json``) so it never shares a GIL with
the harness or the server. Two modes:

- closed loop (``rate`` 0): every connection sends the next request as soon as the previous answer
  arrived, for ``duration_s``: the maximum throughput at that concurrency;
- open loop (``rate`` > 0 requests/s): requests are *scheduled* at a constant rate spread over the
  connections and latency is measured from the scheduled time, so a stalled server shows up as latency
  instead of silently lowering the offered load (no coordinated omission).

Requests are raw bytes built by the harness (request line, headers, body), cycled round-robin. Only the
status line, ``Content-Length`` and chunked framing are parsed from answers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Stats:
    ok: int = 0
    rows: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    # (completion time relative to start, latency seconds) of every successful request.
    samples: list[tuple[float, float]] = field(default_factory=list)


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        status = self._parse()
        if status is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def _parse(self) -> int | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).lower()
        status = int(head[9:12])
        start = end + 4
        cl = head.find(b"content-length:")
        if cl >= 0:
            eol = head.find(b"\r\n", cl)
            length = int(head[cl + 15 : eol if eol > 0 else len(head)])
            if len(self.buf) < start + length:
                return None
            del self.buf[: start + length]
            return status
        if b"transfer-encoding: chunked" in head:
            term = self.buf.find(b"0\r\n\r\n", start)
            if term < 0:
                return None
            del self.buf[: term + 5]
            return status
        del self.buf[:start]
        return status

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.transport.write(request)
        return await self.waiter


async def _connect(host: str, port: int) -> _Conn:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(_Conn, host, port)
    return proto


async def _worker(
    idx: int, spec: dict[str, Any], requests: list[bytes], stats: Stats, t0: float, deadline: float
) -> None:
    host, port = spec["host"], int(spec["port"])
    rows = int(spec.get("rows_per_request", 1))
    conns = int(spec["connections"])
    rate = float(spec.get("rate", 0))
    interval = conns / rate if rate > 0 else 0.0
    conn = await _connect(host, port)
    i = idx
    next_at = t0 + idx * (interval / conns if interval else 0.0)
    while True:
        if interval:
            now = time.perf_counter()
            if next_at > now:
                await asyncio.sleep(next_at - now)
            scheduled = next_at
            next_at += interval
        else:
            scheduled = time.perf_counter()
        if scheduled >= deadline:
            break
        try:
            if conn.closed:
                conn = await _connect(host, port)
            status = await conn.send(requests[i % len(requests)])
        except (OSError, ConnectionError):
            stats.errors += 1
            await asyncio.sleep(0.01)
            continue
        done = time.perf_counter()
        i += conns
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            stats.ok += 1
            stats.rows += rows
            stats.samples.append((done - t0, done - scheduled))
    if conn.transport is not None:
        conn.transport.close()


async def run(spec: dict[str, Any], requests: list[bytes]) -> dict[str, Any]:
    stats = Stats()
    t0 = time.perf_counter()
    deadline = t0 + float(spec["duration_s"])
    tasks = [
        asyncio.create_task(_worker(i, spec, requests, stats, t0, deadline)) for i in range(int(spec["connections"]))
    ]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return summarize(stats, elapsed, float(spec.get("window_s", 5.0)))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def summarize(stats: Stats, elapsed: float, window_s: float) -> dict[str, Any]:
    lat = sorted(s[1] for s in stats.samples)
    cdf_points = [0.0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]
    cdf_points += [float(p) for p in range(0, 100, 2)]
    windows: dict[int, list[float]] = {}
    for t, latency in stats.samples:
        windows.setdefault(int(t // window_s), []).append(latency)
    series = []
    for w in sorted(windows):
        values = sorted(windows[w])
        series.append({"t_s": (w + 1) * window_s, "requests": len(values), "p99_ms": percentile(values, 99) * 1e3})
    return {
        "elapsed_s": elapsed,
        "ok": stats.ok,
        "rows": stats.rows,
        "requests_per_s": stats.ok / elapsed if elapsed else 0.0,
        "rows_per_s": stats.rows / elapsed if elapsed else 0.0,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "non_2xx": sum(v for k, v in stats.statuses.items() if not 200 <= k < 300),
        "errors": stats.errors,
        "latency_ms": {f"p{p:g}": percentile(lat, p) * 1e3 for p in (50, 90, 99, 99.9)},
        "cdf_ms": sorted({(p, percentile(lat, p) * 1e3) for p in cdf_points}) if lat else [],
        "series": series,
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    requests = [Path(p).read_bytes() for p in spec["request_files"]]
    result = asyncio.run(run(spec, requests))
    Path(args[1]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
