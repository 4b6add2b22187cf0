"""The rendered DDL is accepted by the real engine (embedded chDB): the lexical checks
in birdhouse.schema are only useful if what they let through is valid ClickHouse."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from birdhouse.schema.columns import Column, parse_schema
from birdhouse.schema.datafile import parse_datasource_file
from birdhouse.schema.engine import (
    EngineSpec,
    engine_sql,
    quarantine_columns,
    quarantine_engine,
    with_defaults,
)
from birdhouse.schema.types import REQUIRED_CREATE_SETTINGS

from .test_schema_columns import columns
from .test_schema_datafile import FLOCK

chdb_session = pytest.importorskip("chdb.session")
_counter = itertools.count()


@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    s = chdb_session.Session()
    for key, value in REQUIRED_CREATE_SETTINGS.items():
        s.query(f"SET {key} = {value}")
    yield s
    s.close()


def create(session: Any, cols: list[Column], spec: EngineSpec) -> str:
    name = f"t{next(_counter)}"
    session.query(f"CREATE TABLE {name} ({', '.join(c.sql() for c in cols)}) {engine_sql(spec, cols)}")
    return str(session.query(f"SELECT engine_full FROM system.tables WHERE name = '{name}'", "TSVRaw")).strip()


def test_flock_tables(session: Any) -> None:
    ds = parse_datasource_file(FLOCK)
    full = create(session, ds.columns, ds.engine)
    assert full.startswith("MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY timestamp TTL ")
    q = create(session, quarantine_columns(ds.columns), quarantine_engine(ds.columns))
    assert q.startswith("MergeTree PARTITION BY toYear(insertion_date) ORDER BY insertion_date")


SPEC_SCHEMA = (
    "timestamp DateTime `json:$.timestamp`, a2 Float32 CODEC(Delta, ZSTD(4)) `json:$.a2`, "
    "c Nullable(Float32) DEFAULT NULL, arr Array(String) DEFAULT ['-'], c2 LowCardinality(Nullable(String)), "
    "`foo.bar` UInt64 DEFAULT 0, data String `json:$`, sign Int8 DEFAULT 1, v UInt64 DEFAULT 1, "
    "m Map(String, Array(Nullable(Int32))) DEFAULT map(), d64 DateTime64(3, 'UTC') DEFAULT now64(), "
    "dec Decimal(10, 2) DEFAULT 0, s String MATERIALIZED upper(data), al String ALIAS lower(data)"
)


@pytest.mark.parametrize(
    ("spec", "engine"),
    [
        (EngineSpec(), "MergeTree"),
        (
            EngineSpec(
                "VersionedCollapsingMergeTree",
                sorting_key="timestamp, `foo.bar`",
                primary_key="timestamp",
                sign="sign",
                version="v",
                ttl="timestamp + INTERVAL 1 DAY DELETE WHERE sign = 1",
                settings="index_granularity = 1024",
            ),
            "VersionedCollapsingMergeTree(sign, v)",
        ),
        (EngineSpec("ReplacingMergeTree", sorting_key="timestamp", ver="v"), "ReplacingMergeTree(v)"),
        (
            EngineSpec("CollapsingMergeTree", sorting_key="timestamp", sign="sign"),
            "CollapsingMergeTree(sign)",
        ),
        (EngineSpec("SummingMergeTree", partition_key="toYYYYMM(timestamp), sign"), "SummingMergeTree"),
        (EngineSpec("AggregatingMergeTree", sorting_key="data"), "AggregatingMergeTree"),
        (EngineSpec("Null"), "`Null`"),
    ],
)
def test_engines_are_accepted(session: Any, spec: EngineSpec, engine: str) -> None:
    cols = parse_schema(SPEC_SCHEMA)
    assert create(session, cols, with_defaults(spec, cols)).startswith(engine)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(columns(json_typed=False))
def test_generated_columns_create(session: Any, cols: list[Column]) -> None:
    # Defaults and Delta/T64 codecs from the strategy do not fit every type; the types are the point.
    plain = [
        msgspec.structs.replace(c, default_kind=None, default_expr=None, codec="ZSTD(1)" if c.codec else None)
        for c in cols
    ]
    create(session, plain, with_defaults(EngineSpec(), plain))
    create(session, quarantine_columns(plain), quarantine_engine(plain))
