"""Shared fixtures.

chDB allows one data path per process at a time, so every fixture that opens
a backend closes it when the test ends; never hold two open at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from birdhouse.backends import Backend, open_backend


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    """A fresh embedded chDB backend in the test's temp dir."""
    opened = open_backend(f"chdb://{tmp_path / 'chdb'}")
    try:
        yield opened
    finally:
        opened.close()


# App fixtures shared by tests/http, tests/pipeline and others.
from tests.apps import local, make_local  # noqa: E402, F401
