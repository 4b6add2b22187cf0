"""kill -9 harness (DESIGN invariant 1): no acknowledged row is lost, none doubled.

Concurrent clients send rows with unique ids (wait=true and wait=false); the
server is SIGKILLed at a random moment; after a restart every id that got a
2xx must be stored exactly once. The negative control runs the same harness
against a server that acknowledges before writing the WAL and must see loss,
which proves the harness can detect it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import httpx

from tests.server import LocalServer

SCHEMA = "id String `json:$.id`, n Int64 `json:$.n`"
ENV = {"BIRDHOUSE_FLUSH__INTERVAL_MS": "200"}


def _client(url: str, token: str, name: str, acked: list[str], stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    sequence = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as client:
        while not stop.is_set():
            ids = [f"{name}-{sequence}-{i}" for i in range(rng.randint(1, 20))]
            sequence += 1
            body = "\n".join(f'{{"id": "{i}", "n": {sequence}}}' for i in ids)
            wait = "true" if rng.random() < 0.5 else "false"
            try:
                response = client.post(f"/v0/events?name=crash&wait={wait}", content=body)
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code in (200, 202):
                acked.extend(ids)


def _round(data_dir: Path, round_no: int, env: dict[str, str]) -> set[str]:
    server = LocalServer(data_dir, env={**ENV, **env})
    token = server.admin
    if round_no == 0:
        created = httpx.post(
            f"{server.url}/v0/datasources",
            data={"name": "crash", "schema": SCHEMA},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 200, created.text
    acked: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_client, args=(server.url, token, f"r{round_no}t{t}", acked, stop, round_no * 10 + t))
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(random.Random(round_no).uniform(0.4, 1.5))
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(10)
    return set(acked)


def _stored(data_dir: Path, env: dict[str, str]) -> dict[str, int]:
    server = LocalServer(data_dir, env={**ENV, **env})
    try:
        response = httpx.get(
            f"{server.url}/v0/sql",
            params={"q": "SELECT id, count() AS c FROM crash GROUP BY id FORMAT JSONEachRow"},
            headers={"Authorization": f"Bearer {server.admin}"},
        )
        assert response.status_code == 200, response.text
        return {row["id"]: row["c"] for row in map(json.loads, response.text.splitlines())}
    finally:
        server.stop()


def run_harness(data_dir: Path, rounds: int, env: dict[str, str]) -> tuple[set[str], dict[str, int]]:
    acked: set[str] = set()
    for round_no in range(rounds):
        acked |= _round(data_dir, round_no, env)
    return acked, _stored(data_dir, env)


def _diagnostics(data_dir: Path) -> str:
    """What a failure report needs: the servers' warnings and any dead letters."""
    lines = [
        f"{log.name}: {line}"
        for log in sorted(data_dir.parent.glob("server-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if " WARNING " in line or " ERROR " in line or "Traceback" in line
    ]
    letters = sorted(p.name for p in (data_dir / "deadletter").glob("*")) if (data_dir / "deadletter").exists() else []
    return "\n".join([*lines[-40:], f"dead letters: {letters}"])


def test_kill9_loses_no_acknowledged_row_and_doubles_none(tmp_path: Path) -> None:
    acked, stored = run_harness(tmp_path / "data", rounds=10, env={})
    assert len(acked) > 500, "the harness must acknowledge a meaningful number of rows"
    missing = acked - stored.keys()
    doubled = {k: v for k, v in stored.items() if v != 1}
    assert not missing, (
        f"{len(missing)} acknowledged rows lost, e.g. {sorted(missing)[:5]}\n{_diagnostics(tmp_path / 'data')}"
    )
    assert not doubled, f"rows stored more than once: {list(doubled.items())[:5]}\n{_diagnostics(tmp_path / 'data')}"


def test_negative_control_ack_before_write_is_detected(tmp_path: Path) -> None:
    acked, stored = run_harness(tmp_path / "data", rounds=3, env={"BIRDHOUSE_WAL__UNSAFE_ACK_BEFORE_WRITE": "1"})
    assert acked, "the control must acknowledge rows"
    assert acked - stored.keys(), "acknowledging before the WAL write must lose rows under kill -9"


def test_sigterm_delivers_pending_rows_before_exit(tmp_path: Path) -> None:
    env = {"BIRDHOUSE_FLUSH__INTERVAL_MS": "600000"}
    server = LocalServer(tmp_path / "data", env=env)
    auth = {"Authorization": f"Bearer {server.admin}"}
    created = httpx.post(f"{server.url}/v0/datasources", data={"name": "crash", "schema": SCHEMA}, headers=auth)
    assert created.status_code == 200
    for i in range(20):
        response = httpx.post(f"{server.url}/v0/events?name=crash", content=f'{{"id": "s{i}", "n": 1}}', headers=auth)
        assert response.status_code == 202
    server.stop()  # SIGTERM
    assert server.process.returncode == 0
    wal = tmp_path / "data" / "wal"
    leftover = [p for p in wal.glob("*.wal") if p.stat().st_size > 16]
    assert leftover == [], "a graceful stop delivers the WAL within the grace period"
    assert _stored(tmp_path / "data", {}) == {f"s{i}": 1 for i in range(20)}
