"""Fixtures for the backend contract suite: every test that takes ``target``
runs once against embedded chDB and once against a real ClickHouse server.

The server is started once per session by ``scripts/clickhouse`` (which
installs Debian's package when missing). If it cannot be installed or
started, the ClickHouse tests *fail*: a contract that silently ran against
one backend only would prove nothing. ``BIRDHOUSE_SKIP_CLICKHOUSE=1`` skips
them on purpose; ``BIRDHOUSE_CLICKHOUSE_DSN`` points them at a server that is
already running instead.
"""

from __future__ import annotations

import os
import select
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from birdhouse.backends import Backend, Capabilities, open_backend

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "clickhouse"
# Installing the package on a fresh machine (apt-get update + install) takes a while.
START_TIMEOUT_S = 600.0


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[str]:
    """The DSN of a ClickHouse server running for this test session."""
    if os.environ.get("BIRDHOUSE_SKIP_CLICKHOUSE") == "1":
        pytest.skip("BIRDHOUSE_SKIP_CLICKHOUSE=1")
    existing = os.environ.get("BIRDHOUSE_CLICKHOUSE_DSN")
    if existing:
        yield existing
        return
    with tempfile.TemporaryFile() as errors:
        # stderr to a file, not a pipe: apt's output could fill a pipe nobody reads.
        process = subprocess.Popen([str(SCRIPT), "serve"], stdout=subprocess.PIPE, stderr=errors, text=True)
        with process:  # closes the stdout pipe and reaps the script however we leave
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
            line = process.stdout.readline().strip() if ready else ""
            if not line.isdigit():
                process.kill()
                process.wait()
                errors.seek(0)
                detail = errors.read().decode(errors="replace")[-4000:]
                pytest.fail(
                    f"scripts/clickhouse could not start a ClickHouse server (set BIRDHOUSE_SKIP_CLICKHOUSE=1 "
                    f"to skip these tests on purpose):\n{detail}",
                    pytrace=False,
                )
            try:
                yield f"clickhouse://default@127.0.0.1:{line}/"
            finally:
                # The script stops the server and deletes its data on SIGTERM.
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


@dataclass
class Target:
    """A backend under contract plus a database of its own for this test."""

    kind: str
    backend: Backend
    db: str
    request: pytest.FixtureRequest

    @property
    def caps(self) -> Capabilities:
        return self.backend.capabilities

    def table(self, name: str) -> str:
        return f"`{self.db}`.`{name}`"

    def gap(self, missing: bool, reason: str) -> None:
        """Mark this test an expected failure when the backend lacks something.

        Strict: once the backend gains it the test XPASSes and fails, so the
        mark cannot outlive the gap."""
        if missing:
            self.request.applymarker(pytest.mark.xfail(strict=True, reason=f"{self.caps.version}: {reason}"))


@pytest.fixture(params=["chdb", "clickhouse"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "chdb":
        backend = open_backend(f"chdb://{tmp_path / 'chdb'}")
    else:
        backend = open_backend(request.getfixturevalue("clickhouse_server"))
    # One database per test: the server outlives tests (and may be shared).
    db = f"contract_{uuid.uuid4().hex[:12]}"
    try:
        backend.command(f"CREATE DATABASE `{db}`")
        yield Target(request.param, backend, db, request)
    finally:
        try:
            backend.command(f"DROP DATABASE IF EXISTS `{db}`")
        finally:
            backend.close()
