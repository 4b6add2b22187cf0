"""``birdhouse append``: bulk NDJSON into a data source through /v0/events.

Files (plain, ``.gz``, ``.zst``, or ``-`` for stdin) are cut into batches at
line boundaries and sent by a few worker threads. Each batch carries an
``Idempotency-Key`` derived from its source and position, so a retry after a
timeout can never store it twice. 429 waits ``Retry-After``; 503 and network
errors back off and retry; any other status stops the run.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import httpx
import zstandard

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Batch:
    key: str
    body: bytes
    lines: int
    # Where the batch starts, for error messages that point into the file.
    source: str = ""
    first_line: int = 1


@dataclass
class Summary:
    rows: int = 0
    quarantined: int = 0
    batches: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    interrupted: bool = False
    failed: str = ""


class AppendFailed(Exception):
    """The server refused a batch for a reason a retry cannot fix."""


def open_input(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    path = Path(name)
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    if path.suffix == ".zst":
        # closefd: closing the reader closes the file too.
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True))
    return path.open("rb")


def batches(name: str, stream: BinaryIO, batch_bytes: int) -> Iterator[Batch]:
    """Cut at the last newline before ``batch_bytes``; a longer line is a batch of its own."""
    pending = b""
    offset = 0
    line = 1
    while True:
        chunk = stream.read(batch_bytes)
        if not chunk:
            break
        pending += chunk
        while len(pending) >= batch_bytes:
            cut = pending.rfind(b"\n", 0, batch_bytes) + 1 or pending.find(b"\n") + 1 or len(pending)
            body, pending = pending[:cut], pending[cut:]
            batch = _batch(name, offset, line, body)
            yield batch
            offset += len(body)
            line += batch.lines
    if pending.strip():
        yield _batch(name, offset, line, pending)


def _batch(name: str, offset: int, line: int, body: bytes) -> Batch:
    key = hashlib.sha256(f"{name}\0{offset}\0".encode() + hashlib.sha256(body).digest()).hexdigest()
    return Batch(key, body, body.count(b"\n") + (0 if body.endswith(b"\n") else 1), name, line)


class Sender:
    def __init__(self, client: httpx.Client, datasource: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.datasource = datasource
        self.sleep = sleep
        self.stop = threading.Event()

    def send(self, batch: Batch, summary: Summary, lock: threading.Lock) -> tuple[int, int]:
        backoff = 0.5
        for _ in range(MAX_ATTEMPTS):
            if self.stop.is_set():
                raise KeyboardInterrupt
            try:
                response = self.client.post(
                    "/v0/events",
                    params={"name": self.datasource, "wait": "true", "quarantine_details": "true"},
                    content=batch.body,
                    headers={"Idempotency-Key": batch.key, "Content-Type": "application/x-ndjson"},
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code in (200, 202):
                body = response.json()
                with lock:
                    for entry in body.get("quarantine", [])[:5]:
                        if len(summary.errors) < 5:
                            where = f"{batch.source}:{batch.first_line + entry['line'] - 1}"
                            summary.errors.append(f"{where}: {'; '.join(entry['errors'])}")
                return int(body["successful_rows"]), int(body["quarantined_rows"])
            if response is not None and response.status_code not in (429, 503):
                raise AppendFailed(f"HTTP {response.status_code}: {response.text.strip()[:500]}")
            delay = backoff
            if response is not None and response.status_code == 429:
                delay = float(response.headers.get("retry-after", "1") or 1)
            with lock:
                summary.retries += 1
            self.sleep(delay)
            backoff = min(backoff * 2, 30.0)
        raise AppendFailed(f"gave up after {MAX_ATTEMPTS} attempts")


def run_append(
    sender: Sender,
    inputs: list[str],
    batch_bytes: int,
    workers: int,
    on_progress: Callable[[int, int], None] = lambda nbytes, rows: None,
) -> Summary:
    """Send every batch; returns the summary (``interrupted`` on Ctrl-C)."""
    summary = Summary()
    lock = threading.Lock()
    started: dict[Future[tuple[int, int]], Batch] = {}
    pool = ThreadPoolExecutor(workers)

    def collect(done: set[Future[tuple[int, int]]]) -> None:
        for future in done:
            batch = started.pop(future)
            rows, quarantined = future.result()
            summary.rows += rows
            summary.quarantined += quarantined
            summary.batches += 1
            summary.bytes += len(batch.body)
            on_progress(len(batch.body), rows + quarantined)

    try:
        for name in inputs:
            with open_input(name) as stream:
                for batch in batches(name, stream, batch_bytes):
                    while len(started) >= workers * 2:
                        done, _ = wait(started, return_when=FIRST_COMPLETED)
                        collect(done)
                    started[pool.submit(sender.send, batch, summary, lock)] = batch
        while started:
            done, _ = wait(started, return_when=FIRST_COMPLETED)
            collect(done)
    except KeyboardInterrupt:
        summary.interrupted = True
        sender.stop.set()
    except AppendFailed as exc:
        summary.failed = str(exc)
        sender.stop.set()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return summary


def input_size(inputs: list[str]) -> int | None:
    """Total bytes to send when knowable (plain files only), for the ETA."""
    total = 0
    for name in inputs:
        if name == "-" or Path(name).suffix in (".gz", ".zst"):
            return None
        total += Path(name).stat().st_size
    return total
