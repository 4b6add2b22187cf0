"""A real `birdhouse local` process on a free loopback port, for tests that
need the whole stack (CLI, granian, real clients)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalServer:
    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        scheme: str = "http",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.port = port or free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self._log = log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "birdhouse", "local", "--port", str(self.port), "--data-dir", str(data_dir), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            # Its own process group: granian runs the app in a worker child,
            # and a kill must reach both.
            start_new_session=True,
        )
        self._wait_ready()
        self.tokens: dict[str, str] = httpx.get(f"{self.url}/tokens", verify=verify).json()

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v0/health", timeout=1, verify=self.verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout_s}s: {self.log_path.read_text()[-2000:]}")

    @property
    def admin(self) -> str:
        return self.tokens["workspace_admin_token"]

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing the process can react to."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
