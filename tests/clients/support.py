"""Helpers shared by the real-client tests: where the installed clients live, how to run them, how to wait for
rows, and failure messages that name the client and the request that broke."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.clients.proxy import RecordingProxy
from tests.server import LocalServer

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
INSTALL_SCRIPT = REPO / "scripts" / "install-clients"
VENVS = REPO / ".clients" / "venvs"
NODE_DIR = HERE / "node"
NODE_MODULES = NODE_DIR / "node_modules"
DATAFILES = HERE / "datafiles"
RECORDED = HERE / "recorded"
PYSDK_SCRIPTS = HERE / "pysdk"
CHROMIUM = Path("/usr/bin/chromium")

# What scripts/install-clients installs (keep both in step).
PYSDK = "tinybird-python-sdk 0.3.7"
CLI4 = "tinybird CLI 4.6.13"
CLI5 = "tinybird CLI 5.0.3"
TS_SDK = "@tinybirdco/sdk 0.0.84"
FLOCK = "@tinybirdco/flock.js 1.4.1"


def venv_bin(venv: str, program: str) -> Path:
    return VENVS / venv / "bin" / program


def broke(client: str, what: str, proxy: RecordingProxy | None = None, output: str = "") -> str:
    """A failure message: the client, what went wrong, the requests that failed, then every request and the
    client's own output."""
    lines = [f"{client}: {what}"]
    if proxy is not None:
        failed = [e.describe() for e in proxy.recorded() if e.status >= 400 or e.status == 0]
        if failed:
            lines.append("requests that broke:\n  " + "\n  ".join(failed))
        lines.append("all requests:\n  " + (proxy.log().replace("\n", "\n  ") or "(none)"))
    if output:
        lines.append("client output:\n" + output[-4000:])
    if any(_FLUSH_BUG_SEEN.values()):
        lines.append("diagnosis: " + FLUSH_BUG)
    return "\n".join(lines)


def run(
    args: Sequence[str | Path],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client process; a timeout is reported as a completed process with return code -9 so the caller's
    assertion (and its message naming the client) decides."""
    full_env = {**os.environ, **(env or {})}
    try:
        return subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            input=input_text,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return subprocess.CompletedProcess(
            [str(a) for a in args], -9, out, err + f"\n[killed after {timeout}s timeout]"
        )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def deploy(server: LocalServer, directory: Path) -> None:
    """`birdhouse deploy DIR` against the server (the way users apply datafiles)."""
    result = run(
        [sys.executable, "-m", "birdhouse", "deploy", directory, "--host", server.url, "--token", server.admin],
        timeout=120,
    )
    assert result.returncode == 0, f"birdhouse deploy {directory} failed:\n{output_of(result)}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sql(server: LocalServer, query: str, token: str | None = None) -> dict[str, Any]:
    """Run a query through /v0/sql (FORMAT JSON) and return the parsed body."""
    response = httpx.get(
        f"{server.url}/v0/sql", params={"q": f"{query} FORMAT JSON"}, headers=auth(token or server.admin), timeout=30
    )
    assert response.status_code == 200, f"/v0/sql {query!r} -> {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


def rows(server: LocalServer, query: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = sql(server, query)["data"]
    return data


def wait_for_rows(
    server: LocalServer,
    query: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """Poll /v0/sql until ``done(rows)``; return the last rows either way (the caller asserts)."""
    deadline = time.monotonic() + timeout
    found = rows(server, query)
    while not done(found) and time.monotonic() < deadline:
        time.sleep(0.25)
        found = rows(server, query)
    return found


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects a scenario script printed, one a line (other lines ignored)."""
    found: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                found.append(value)
    return found


FLUSH_BUG = (
    "this server shows a flush bug: rows answered 202 (no wait=true) never become visible on an idle server "
    "(seen in birdhouse/pipeline/flusher.py: Flusher.note() set _oldest without waking the flush loop, which waited "
    "on its kick event with no timeout, so flush.interval_ms never fired; rows appeared only after a later wait=true "
    "request, flush.max_rows/max_bytes or shutdown)"
)
_FLUSH_BUG_SEEN: dict[str, bool] = {}


def flush_bug(server: LocalServer) -> bool:
    """Whether this server shows FLUSH_BUG: a canary row sent without wait=true is still invisible after 3 s
    (three times flush.interval_ms). Checked once per server."""
    if server.url not in _FLUSH_BUG_SEEN:
        marker = time.time_ns()
        for _ in range(5):  # the rate-limited server may refuse it at first
            response = httpx.post(
                f"{server.url}/v0/events",
                params={"name": "replayed_events"},
                content=json.dumps({"client": "flush_canary", "id": marker, "at": "2025-06-12 10:00:00"}),
                headers=auth(server.admin),
                timeout=30,
            )
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        assert response.status_code == 202, f"canary POST /v0/events -> {response.status_code} {response.text}"
        found = wait_for_rows(
            server,
            f"SELECT id FROM replayed_events WHERE client = 'flush_canary' AND id = {marker}",
            lambda r: len(r) == 1,
            timeout=3.0,
        )
        _FLUSH_BUG_SEEN[server.url] = not found
    return _FLUSH_BUG_SEEN[server.url]


def wait_for_flushed_rows(
    server: LocalServer,
    query: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Rows that a client sent without wait=true: poll for them. When they do not come, check the server for
    FLUSH_BUG, so that the caller's failure message (``broke``) can name it."""
    found = wait_for_rows(server, query, done, timeout=4.0 if _FLUSH_BUG_SEEN.get(server.url) else timeout)
    if not done(found):
        flush_bug(server)
    return found
