from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    """Where a test's WAL lives (created by `Wal` itself)."""
    return tmp_path / "wal"
