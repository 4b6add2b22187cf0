"""Fixtures for the real-client tests.

``clients`` runs scripts/install-clients once per session (Node packages, the PyPI clients in their own
virtualenvs, Debian's chromium). It skips only when the package registries cannot be reached; any other install
failure fails the tests. ``server`` is one `birdhouse local` process for the session with every datafile in
tests/clients/datafiles deployed; ``limited`` is a second one whose workspace allows 1 request/s (burst 1).
``proxy`` puts a recording proxy in front of ``server`` for one test, so a failure can list the requests the
client made and what came back.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.proxy import RecordingProxy
from tests.clients.support import DATAFILES, INSTALL_SCRIPT, deploy
from tests.server import LocalServer

REGISTRIES_UNREACHABLE = 75


@pytest.fixture(scope="session")
def clients() -> float:
    """Install (or confirm) every client; returns the seconds it took."""
    started = time.monotonic()
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode == REGISTRIES_UNREACHABLE:
        pytest.skip(f"scripts/install-clients: package registries unreachable\n{result.stderr[-2000:]}")
    if result.returncode != 0:
        pytest.fail(
            f"scripts/install-clients failed (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return time.monotonic() - started


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    root = Path(tmp_path_factory.mktemp("clients"))
    running = LocalServer(root / "data")
    try:
        deploy(running, DATAFILES)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server that rate-limits /v0/events to 1 request/s with a burst of 1, so clients meet 429s."""
    root = Path(tmp_path_factory.mktemp("limited"))
    running = LocalServer(
        root / "data", env={"BIRDHOUSE_LIMITS__WORKSPACE_RPS": "1", "BIRDHOUSE_LIMITS__WORKSPACE_BURST": "1"}
    )
    try:
        deploy(running, DATAFILES)
        yield running
    finally:
        running.stop()


@pytest.fixture
def proxy(server: LocalServer) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(server.url)
    try:
        yield recording
    finally:
        recording.close()


@pytest.fixture
def limited_proxy(limited: LocalServer) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(limited.url)
    try:
        yield recording
    finally:
        recording.close()
