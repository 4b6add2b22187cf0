"""Large bodies converted in worker processes, off the server's GIL.

One granian worker serves everything (chDB owns its data directory in one
process), so the event loop, the WAL hand-off, the flusher and any conversion
thread share one GIL and, in effect, one core. Conversion is the largest piece
of work per large body and needs nothing but the body and the schema, so it can
run in another process (``birdhouse.schema.worker``) on another core while the
loop keeps answering.

Anything the workers cannot do falls back to converting in-process, which gives
the identical result: a worker not started yet or restarting, a worker that died
(its requests in flight are converted again here), a conversion that raised
there (it is repeated here, so an error surfaces exactly as before). A worker
that died is started again at most once per ``RESTART_DELAY_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import pickle
import subprocess
import sys
import time
from typing import IO, Any

from birdhouse.schema.convert import Converted
from birdhouse.schema.worker import READY, REPLY, REQUEST

log = logging.getLogger("birdhouse.offload")

RESTART_DELAY_S = 1.0
# Linux pipes hold 64 KiB by default; a 1 MiB pipe moves a large body in one write.
_F_SETPIPE_SZ = 1031
_PIPE_BYTES = 1 << 20


def auto_processes(cpus: int | None) -> int:
    """``events.conversion_processes = -1``: one core stays with the server's own process."""
    return max(0, min(4, (cpus or 1) - 1))


def _grow_pipe(pipe: IO[bytes] | None) -> None:
    if pipe is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)


class _Replies(asyncio.Protocol):
    def __init__(self, worker: _Worker) -> None:
        self.worker = worker

    def data_received(self, data: bytes) -> None:
        self.worker.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.lost()


class _Worker:
    """One worker process and the conversions in flight to it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.writer: asyncio.WriteTransport | None = None
        self.reader: asyncio.ReadTransport | None = None
        self.ready = False
        self.starting = False
        self.started_at = -RESTART_DELAY_S
        self.pending: dict[int, asyncio.Future[Converted | None]] = {}
        # The reply being read: pieces so far, their length, the payload length (-1: header first).
        self._parts: list[memoryview] = []
        self._have = 0
        self._expect = -1
        self._reply_id = self._reply_ok = 0

    async def start(self) -> None:
        """Spawn the process and connect its pipes; the caller set ``starting``
        already, so that no second start is scheduled meanwhile."""
        loop = asyncio.get_running_loop()
        try:
            process = subprocess.Popen(  # our own module, with this interpreter
                [sys.executable, "-m", "birdhouse.schema.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                # Its own session: a signal to the server's process group does not reach it; it
                # ends when the server does (stdin closes), after the server's own shutdown.
                start_new_session=True,
            )
            _grow_pipe(process.stdin)
            _grow_pipe(process.stdout)
            self.process = process
            self.writer, _ = await loop.connect_write_pipe(asyncio.Protocol, process.stdin)
            self.reader, _ = await loop.connect_read_pipe(lambda: _Replies(self), process.stdout)
        except Exception:
            log.exception("could not start a conversion worker; converting in-process")
            self.discard()
        finally:
            self.starting = False

    def submit(
        self, request_id: int, key: bytes, spec: bytes, body: bytes, details: bool
    ) -> asyncio.Future[Converted | None]:
        assert self.writer is not None
        future: asyncio.Future[Converted | None] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self.writer.write(REQUEST.pack(request_id, details, len(key), len(spec), len(body)) + key + spec)
        self.writer.write(body)
        return future

    def feed(self, data: bytes) -> None:
        """Replies arrive in pipe-sized pieces: a header's or payload's pieces are
        kept in a list and joined once, rather than appended to and cut from one buffer."""
        view = memoryview(data)
        while view:
            if self._expect < 0:  # reading a header
                view, header = self._collect(view, REPLY.size)
                if header is None:
                    return
                self._reply_id, self._reply_ok, self._expect = REPLY.unpack(header)
            view, payload = self._collect(view, self._expect)
            if payload is None:
                return
            self._expect = -1
            self._reply(self._reply_id, self._reply_ok, payload)

    def _collect(self, view: memoryview, size: int) -> tuple[memoryview, bytes | None]:
        """Take from ``view`` what the item being read (``size`` bytes) still lacks;
        returns the rest of ``view`` and the item's bytes once it is complete."""
        need = size - self._have
        if need > 0:
            self._parts.append(view[:need])
            self._have += min(need, len(view))
            view = view[need:]
            if self._have < size:
                return view, None
        item = b"".join(self._parts)
        self._parts, self._have = [], 0
        return view, item

    def _reply(self, request_id: int, ok: int, payload: bytes) -> None:
        if request_id == READY:
            self.ready = True
            return
        future = self.pending.pop(request_id, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(pickle.loads(payload))  # noqa: S301 - written by our own worker process
        else:
            log.warning("conversion worker failed (converting in-process): %s", payload.decode(errors="replace"))
            future.set_result(None)

    def lost(self) -> None:
        if self.ready:
            log.warning("a conversion worker exited; converting in-process until it is restarted")
        self.discard()

    def discard(self) -> None:
        """Close and collect the process in the background (it may still be exiting)."""
        process = self.close()
        if process is not None:
            _reap(process)

    def close(self) -> subprocess.Popen[bytes] | None:
        """Fail what is pending over to the caller and close the pipes (the process
        then exits); returns the process for the caller to collect."""
        self.ready = False
        for future in self.pending.values():
            if not future.done():
                future.set_result(None)
        self.pending.clear()
        self._parts, self._have, self._expect = [], 0, -1
        for transport in (self.writer, self.reader):
            if transport is not None:
                transport.close()
        self.writer = self.reader = None
        process, self.process = self.process, None
        return process


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Collect the exit status without blocking the loop (stdin is closed, so it is exiting)."""
    if process.poll() is None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().run_in_executor(None, _wait_or_kill, process)
            return
        _wait_or_kill(process)


def _wait_or_kill(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Offload:
    """Conversions of large bodies spread over ``processes`` worker processes,
    started on first use. :meth:`convert` answers None when the caller must
    convert in-process."""

    def __init__(self, processes: int) -> None:
        self._workers = [_Worker() for _ in range(processes)]
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.offloaded = 0
        self.fallbacks = 0

    @property
    def enabled(self) -> bool:
        return bool(self._workers)

    async def convert(self, key: bytes, spec: bytes, body: bytes, details: bool) -> Converted | None:
        worker = self._pick()
        if worker is None:
            self.fallbacks += 1
            return None
        converted = await worker.submit(next(self._ids), key, spec, body, details)
        if converted is None:
            self.fallbacks += 1
        else:
            self.offloaded += 1
        return converted

    def _pick(self) -> _Worker | None:
        best: _Worker | None = None
        for worker in self._workers:
            if worker.ready and worker.writer is not None:
                if best is None or len(worker.pending) < len(best.pending):
                    best = worker
            elif self._due(worker):
                worker.starting, worker.started_at = True, time.monotonic()
                task = asyncio.get_running_loop().create_task(worker.start())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return best

    @staticmethod
    def _due(worker: _Worker) -> bool:
        """Not running and not started in the last RESTART_DELAY_S."""
        idle = not worker.starting and worker.process is None
        return idle and time.monotonic() - worker.started_at >= RESTART_DELAY_S

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for worker in self._workers:
            process = worker.close()
            if process is not None:
                await asyncio.get_running_loop().run_in_executor(None, _wait_or_kill, process)

    def stats(self) -> dict[str, Any]:
        return {
            "processes": len(self._workers),
            "ready": sum(w.ready for w in self._workers),
            "offloaded": self.offloaded,
            "fallbacks": self.fallbacks,
        }
