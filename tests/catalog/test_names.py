"""Data sources are found by (workspace, name) through an index kept with every write and reload."""

from __future__ import annotations

import msgspec

from birdhouse.backends import Backend
from birdhouse.catalog.catalog import Catalog
from birdhouse.catalog.models import DataSource
from birdhouse.schema.columns import parse_schema
from birdhouse.schema.engine import default_engine

COLUMNS = parse_schema("`id` Int64 `json:$.id`")


def _datasource(id_: str, workspace_id: str, name: str) -> DataSource:
    return DataSource(id=id_, workspace_id=workspace_id, name=name, columns=COLUMNS, engine=default_engine(COLUMNS))


def test_names_resolve_per_workspace_through_saves_renames_deletes_and_reloads(backend: Backend) -> None:
    catalog = Catalog(backend, b"s" * 32, "local")
    catalog.open()
    first, other = _datasource("t_1", "w1", "events"), _datasource("t_2", "w2", "events")
    catalog.save_datasource(first)
    catalog.save_datasource(other)
    assert catalog.find_datasource("w1", "events") == first
    assert catalog.find_datasource("w2", "events") == other
    assert catalog.find_datasource("w3", "events") is None
    assert catalog.find_datasource("w1", "t_1") == first  # by id too
    assert catalog.find_datasource("w2", "t_1") is None  # an id of another workspace

    renamed = msgspec.structs.replace(first, name="clicks")
    catalog.save_datasource(renamed)
    assert catalog.find_datasource("w1", "events") is None
    assert catalog.find_datasource("w1", "clicks") == renamed

    # Another process opening the same catalog builds the same index from storage.
    reloaded = Catalog(backend, b"s" * 32, "local")
    reloaded.open()
    assert reloaded.find_datasource("w1", "clicks") == renamed
    assert reloaded.find_datasource("w2", "events") == other

    catalog.forget_datasource(renamed)
    assert catalog.find_datasource("w1", "clicks") is None
    assert catalog.find_datasource("w2", "events") == other
