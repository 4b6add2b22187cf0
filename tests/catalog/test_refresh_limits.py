"""Catalog reloads triggered by lookup misses are bounded (shared catalogs)."""

from __future__ import annotations

import time

import pytest

from birdhouse.backends import Backend
from birdhouse.catalog import catalog as catalog_module
from birdhouse.catalog.catalog import MISS_REFRESH_INTERVAL_S, Catalog


def test_missing_datasource_names_cannot_force_a_reload_each(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog(backend, b"s" * 32, "local")
    catalog.open()
    catalog.shared = True  # as with a ClickHouse backend: another node may have written
    reloads: list[float] = []
    monkeypatch.setattr(catalog, "refresh", lambda: reloads.append(time.monotonic()))
    clock = [1000.0]
    monkeypatch.setattr(f"{catalog_module.__name__}.time.monotonic", lambda: clock[0])
    # A burst of distinct names: one reload, not one per name.
    answers = [catalog.refresh_for_missing_datasource("w", f"random_{i}") for i in range(500)]
    assert answers.count(True) == 1 and len(reloads) == 1
    # The same name again within a second: no reload even after the global floor.
    clock[0] += MISS_REFRESH_INTERVAL_S
    assert catalog.refresh_for_missing_datasource("w", "random_0") is False
    # A new name after the floor: reloads again.
    assert catalog.refresh_for_missing_datasource("w", "later") is True
    assert len(reloads) == 2
    # An embedded (unshared) catalog never reloads on a miss.
    catalog.shared = False
    clock[0] += 10
    assert catalog.refresh_for_missing_datasource("w", "other") is False
