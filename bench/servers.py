"""Processes the harness starts on loopback and stops by pid: birdhouse, the trivial endpoint and a
ClickHouse server (when one is installed). Each gets a fresh directory under the run's work dir."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A child process with a log file, readiness polling and a pid-only stop."""

    name = "process"

    def __init__(self, cmd: list[str], log_path: Path, ready_url: str, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._cmd, self._env, self._ready_url = cmd, {**os.environ, **(env or {})}, ready_url
        self._log = log_path.open("wb")
        self.start()

    def start(self) -> None:
        """Run the command and wait until it answers (also again after `terminate`)."""
        self.process = subprocess.Popen(  # noqa: S603
            self._cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self._env, cwd=ROOT
        )
        self.pid = self.process.pid
        self._wait_ready(self._ready_url)

    def _wait_ready(self, url: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} not ready in {timeout_s}s: {self.log_path.read_text(errors='replace')[-2000:]}"
        )

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def terminate(self) -> None:
        """SIGTERM (SIGKILL after 40 s); the data dir stays, and `start` runs the same command again."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        self.terminate()
        self._log.close()


class Birdhouse(Process):
    name = "birdhouse"

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / "birdhouse-data"
        exe = Path(sys.executable).parent / "birdhouse"
        cmd = [str(exe), "local", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        super().__init__(
            cmd, workdir / "birdhouse.log", f"{self.url}/v0/health", {"PYTHONUNBUFFERED": "1", **(env or {})}
        )
        self.command = " ".join([*(f"{k}={v}" for k, v in (env or {}).items()), *cmd])
        self.token: str = httpx.get(f"{self.url}/tokens").json()["workspace_admin_token"]
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def create_datasource(self, name: str, schema: str) -> None:
        r = self.client.post("/v0/datasources", data={"name": name, "schema": schema})
        if r.status_code >= 300:
            raise RuntimeError(f"creating {name}: {r.status_code} {r.text}")

    def drop_datasource(self, name: str) -> None:
        self.client.delete(f"/v0/datasources/{name}")

    def count(self, name: str) -> int:
        r = self.client.get("/v0/sql", params={"q": f"SELECT count() AS c FROM {name} FORMAT JSON"})
        r.raise_for_status()
        return int(r.json()["data"][0]["c"])

    def fill_backlog(self, name: str, shape: str, rows: int) -> dict[str, float]:
        """Stop the server and put ``rows`` rows for ``name`` into its WAL (bench/backlog.py); it stays
        stopped until `start`, which then has all of them to deliver."""
        self.terminate()
        cmd = [sys.executable, "-m", "bench.backlog", str(self.data_dir), name, shape, str(rows)]
        proc = subprocess.run(  # noqa: S603
            cmd, env=self._env, cwd=ROOT, capture_output=True, text=True, check=False, timeout=3600
        )
        if proc.returncode != 0:
            raise RuntimeError(f"bench.backlog failed ({proc.returncode}): {proc.stderr[-2000:]}")
        filled: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
        return filled

    def wal_bytes(self) -> int:
        total = 0
        for path in (self.data_dir / "wal").rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except OSError:
                pass
        return total

    def stop(self) -> None:
        # Also called when the server never became ready, before the client existed:
        # the process must still be stopped (an AttributeError here once left one running).
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        super().stop()


class Trivial(Process):
    name = "trivial"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "bench.trivial", str(self.port), str(workdir / "trivial-wal")]
        super().__init__(cmd, workdir / "trivial.log", f"{self.url}/v0/health")


_CH_CONFIG = """<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
</yandex>
"""

_CH_USERS = """<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"""


def clickhouse_binary() -> str | None:
    for name in ("clickhouse-server", "clickhouse"):
        found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if found:
            return found
    return None


class ClickHouse(Process):
    """A throwaway ClickHouse server: temp config, temp data dir, loopback ports."""

    name = "clickhouse"

    def __init__(self, workdir: Path, binary: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        d = workdir / "clickhouse"
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.xml").write_text(_CH_CONFIG.format(d=d, http=self.port, tcp=free_port()))
        (d / "users.xml").write_text(_CH_USERS)
        cmd = [binary, f"--config-file={d / 'config.xml'}"]
        if Path(binary).name == "clickhouse":
            cmd = [binary, "server", f"--config-file={d / 'config.xml'}"]
        super().__init__(cmd, d / "stdout.log", f"{self.url}/ping")
        self.client = httpx.Client(base_url=self.url, timeout=60)
        self.version = self.query("SELECT version()").strip()

    def query(self, sql: str, **params: Any) -> str:
        r = self.client.post("/", content=sql.encode(), params=params)
        if r.status_code != 200:
            raise RuntimeError(f"ClickHouse: {r.status_code} {r.text[:500]}")
        return r.text

    def create_table(self, name: str, columns_sql: str) -> None:
        self.query(f"DROP TABLE IF EXISTS {name}")
        self.query(f"CREATE TABLE {name} ({columns_sql}) ENGINE = MergeTree ORDER BY timestamp")

    def count(self, name: str) -> int:
        return int(self.query(f"SELECT count() FROM {name}").strip())

    def active_parts(self, name: str) -> int:
        return int(self.query(f"SELECT count() FROM system.parts WHERE table = '{name}' AND active").strip())

    def drop_table(self, name: str) -> None:
        self.query(f"DROP TABLE IF EXISTS {name}")

    def stop(self) -> None:
        # Also called when the server never became ready, before the client existed:
        # the process must still be stopped (an AttributeError here once left one running).
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        super().stop()
