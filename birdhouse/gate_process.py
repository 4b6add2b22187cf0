"""The connection gate (``birdhouse.gate``) as a child process of the server:
the child's entry point (``serve``, ``main``) and its supervision (``GateProcess``).

``birdhouse local|serve`` with ``server.max_connections`` > 0 points granian
at a Unix socket in a private directory and hooks this into granian's main
process: the gate starts once granian's socket listens (``on_startup``, before
the worker is forked), a SIGTERM/SIGINT to the server reaches the gate first
(it stops accepting while granian drains its connections gracefully), and the
gate is reaped after granian's worker has stopped (``on_shutdown``). A separate
process, not a thread, because granian forks its worker: a forked copy of the
gate's listening socket would keep the public port open in the worker. If the
gate dies the server shuts down (exit status 1); if the server dies the gate
notices within half a second and exits: it never outlives its parent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from types import FrameType
from typing import Any

from birdhouse.gate import Gate, GateConfig

log = logging.getLogger("birdhouse.gate")


class GateError(RuntimeError):
    """The gate could not start (e.g. the port is taken, a bad certificate)."""


class GateProcess:
    def __init__(self, config: GateConfig, start_timeout_s: float = 30.0) -> None:
        self.config = config
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.failed = False  # exited while the server still ran
        self._stopping = False

    def start(self) -> None:
        """granian ``on_startup`` hook (main process; granian's socket listens)."""
        read_end, write_end = os.pipe()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "birdhouse.gate_process", json.dumps(asdict(self.config)), str(write_end)],
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        try:
            status = self._read_status(read_end)
        finally:
            os.close(read_end)
        if status != b"ok":
            self._kill()
            raise GateError(status.decode(errors="replace") or "connection gate exited before listening")
        self._relay_signals()
        threading.Thread(target=self._watch, name="birdhouse-gate-watch", daemon=True).start()

    def _read_status(self, fd: int) -> bytes:
        deadline = time.monotonic() + self.start_timeout_s
        data = b""
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                return data
            data += chunk
        return data or b"connection gate did not start in time"

    def _relay_signals(self) -> None:
        # granian installed its SIGINT/SIGTERM handlers before calling the
        # startup hooks; wrap them so the gate stops accepting first.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)

            def relay(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                self.stop_accepting()
                if callable(previous):
                    previous(signum, frame)

            signal.signal(sig, relay)

    def _watch(self) -> None:
        assert self.process is not None
        self.process.wait()
        if not self._stopping:
            self.failed = True
            print("birdhouse: the connection gate exited; shutting down", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)  # granian's graceful shutdown

    def stop_accepting(self) -> None:
        """SIGTERM: the gate closes its listener and drains."""
        self._stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 5.0) -> None:
        """granian ``on_shutdown`` hook: the worker is gone, so are the gate's
        upstream connections; the gate exits at once, or is killed."""
        self.stop_accepting()
        if self.process is None:
            return
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._kill()

    def _kill(self) -> None:
        self._stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def serve(config: GateConfig, ready: Callable[[Gate], None] | None = None) -> None:
    """Run the gate until SIGTERM/SIGINT and the drain, or the parent's exit."""
    loop = asyncio.get_running_loop()
    gate = Gate(config)
    await gate.start()
    parent = os.getppid()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # A terminal hang-up makes granian reload its workers, not exit: the gate stays.
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    if ready is not None:
        ready(gate)
    log.info("connection gate on %s:%d: at most %d connections", config.host, gate.port, config.max_connections)

    async def wait(event: asyncio.Event, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass

    while not stop.is_set() and os.getppid() == parent:
        await wait(stop, 0.5)
    gate.stop_accepting()
    deadline = loop.time() + config.drain_s
    while gate.open_connections and loop.time() < deadline and os.getppid() == parent:
        await wait(gate.idle, 0.5)
    gate.abort_all()


def main(argv: list[str]) -> None:
    """``python -m birdhouse.gate_process CONFIG_JSON STATUS_FD`` (the child): writes ``ok`` or the
    error to STATUS_FD once listening (or not), then serves."""
    from birdhouse.logs import configure_logging

    config = GateConfig(**json.loads(argv[0]))
    configure_logging(config.log_level, config.log_format)
    status = int(argv[1])

    reported = False

    def ready(gate: Gate) -> None:
        nonlocal reported
        os.write(status, b"ok")
        os.close(status)
        reported = True

    try:
        asyncio.run(serve(config, ready))
    except (OSError, ssl.SSLError, ValueError) as exc:
        if reported:
            raise
        os.write(status, f"connection gate: {exc}".encode())  # e.g. the port is taken, a bad certificate
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
