from __future__ import annotations

import msgspec
import pytest

from birdhouse.schema.columns import Column, parse_schema
from birdhouse.schema.engine import (
    ENGINES,
    QUARANTINE_ENGINE,
    EngineError,
    EngineSpec,
    canonical_engine_name,
    default_engine,
    engine_full,
    engine_sql,
    parse_settings,
    quarantine_columns,
    quarantine_engine,
    with_defaults,
)

COLS = parse_schema(
    "ts DateTime, `foo.bar` UInt64, name String, f Float64, n Nullable(String), sign Int8, v UInt32, "
    "m String MATERIALIZED upper(name), al String ALIAS lower(name)"
)


def test_defaults_of_the_spec_struct() -> None:
    spec = EngineSpec()
    assert spec.engine == "MergeTree"
    assert msgspec.json.decode(msgspec.json.encode(spec), type=EngineSpec) == spec
    assert engine_sql(spec, COLS) == "ENGINE = MergeTree ORDER BY tuple()"


@pytest.mark.parametrize(
    ("schema", "sorting_key", "partition_key"),
    [
        (
            "a String, d Date, b Int32, n Nullable(Int8), arr Array(Int8), c String, e UInt8, f String",
            "d, a, b, c",
            "toYear(d)",
        ),
        ("x Nullable(DateTime), y DateTime64(3), z LowCardinality(String)", "y, z", "toYear(y)"),
        ("`a.b` String, c Int8", "`a.b`, c", None),
        ("f Float32, g Float64, s Array(String)", "f, g", None),
        ("f Float32, s String", "s", None),
        ("a Array(String), b Nullable(String), c Bool", None, None),
        ("a String ALIAS 'x', b Int8 MATERIALIZED 1", "b", None),
    ],
)
def test_default_engine(schema: str, sorting_key: str | None, partition_key: str | None) -> None:
    spec = default_engine(parse_schema(schema))
    assert spec.engine == "MergeTree"
    assert spec.sorting_key == sorting_key
    assert spec.partition_key == partition_key


def test_with_defaults_fills_only_what_is_missing() -> None:
    assert with_defaults(EngineSpec(), COLS).sorting_key == "ts, `foo.bar`, name, sign"
    assert with_defaults(EngineSpec(partition_key="toYYYYMM(ts)"), COLS).partition_key == "toYYYYMM(ts)"
    keep = EngineSpec(sorting_key="name")
    assert with_defaults(keep, COLS) is keep
    assert with_defaults(EngineSpec("Null"), COLS) == EngineSpec("Null")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            EngineSpec(sorting_key="ts", partition_key="toYYYYMM(ts)", ttl="ts + toIntervalDay(60)"),
            "MergeTree PARTITION BY toYYYYMM(ts) ORDER BY ts TTL ts + toIntervalDay(60)",
        ),
        (
            EngineSpec(sorting_key="ts, name", primary_key="ts", settings="index_granularity=8192"),
            "MergeTree ORDER BY (ts, name) PRIMARY KEY ts SETTINGS index_granularity = 8192",
        ),
        (
            EngineSpec("ReplacingMergeTree", sorting_key="name", ver="v"),
            "ReplacingMergeTree(`v`) ORDER BY name",
        ),
        (EngineSpec("ReplacingMergeTree", sorting_key="name"), "ReplacingMergeTree ORDER BY name"),
        (EngineSpec("CollapsingMergeTree", sign="sign"), "CollapsingMergeTree(`sign`) ORDER BY tuple()"),
        (
            EngineSpec("VersionedCollapsingMergeTree", sorting_key="tuple()", sign="sign", version="v"),
            "VersionedCollapsingMergeTree(`sign`, `v`) ORDER BY tuple()",
        ),
        (EngineSpec("summingmergetree", sorting_key="name"), "SummingMergeTree ORDER BY name"),
        (EngineSpec("AggregatingMergeTree", sorting_key="(name)"), "AggregatingMergeTree ORDER BY (name)"),
        (EngineSpec("Null"), "Null"),
        (
            EngineSpec(sorting_key="ts", ttl="ts + INTERVAL 1 DAY DELETE WHERE sign = 1, ts + INTERVAL 2 DAY"),
            "MergeTree ORDER BY ts TTL ts + INTERVAL 1 DAY DELETE WHERE sign = 1, ts + INTERVAL 2 DAY",
        ),
        (
            EngineSpec(partition_key="toYear(ts), sign"),
            "MergeTree PARTITION BY (toYear(ts), sign) ORDER BY tuple()",
        ),
    ],
)
def test_engine_full(spec: EngineSpec, expected: str) -> None:
    assert engine_full(spec, COLS) == expected
    assert engine_sql(spec, COLS) == f"ENGINE = {expected}"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (EngineSpec("Log"), "Unsupported engine 'Log'. Supported engines: MergeTree, ReplacingMergeTree"),
        (EngineSpec("MergeTree; DROP TABLE x"), "Unsupported engine 'MergeTree; DROP TABLE x'"),
        (EngineSpec("CollapsingMergeTree"), "ENGINE_SIGN is required by the CollapsingMergeTree engine"),
        (
            EngineSpec("VersionedCollapsingMergeTree", sign="sign"),
            "ENGINE_VERSION is required by the VersionedCollapsingMergeTree engine",
        ),
        (EngineSpec(ver="v"), "ENGINE_VER is not valid with the MergeTree engine"),
        (
            EngineSpec("ReplacingMergeTree", sign="sign"),
            "ENGINE_SIGN is not valid with the ReplacingMergeTree",
        ),
        (EngineSpec("CollapsingMergeTree", sign="s", version="v"), "ENGINE_VERSION is not valid with"),
        (
            EngineSpec("ReplacingMergeTree", ver="nope"),
            "ENGINE_VER 'nope' is not a column of the data source",
        ),
        (
            EngineSpec("ReplacingMergeTree", ver="v`) ENGINE=Log"),
            "ENGINE_VER 'v`) ENGINE=Log' is not a column",
        ),
        (EngineSpec("Null", sorting_key="ts"), "ENGINE_SORTING_KEY is not valid with the Null engine"),
        (EngineSpec(sorting_key="ts) ENGINE=Log; DROP TABLE x"), "Invalid ENGINE_SORTING_KEY: Invalid SQL"),
        (EngineSpec(sorting_key="a;DROP TABLE x"), "';' is not allowed"),
        (
            EngineSpec(partition_key="(SELECT 1)"),
            "Invalid ENGINE_PARTITION_KEY: Invalid SQL expression: 'SELECT'",
        ),
        (EngineSpec(primary_key="ts -- x"), "Invalid ENGINE_PRIMARY_KEY: Invalid SQL expression: comments"),
        (EngineSpec(ttl="ts SETTINGS x = 1"), "Invalid ENGINE_TTL: Invalid SQL expression: 'SETTINGS'"),
        (EngineSpec(settings="a = 1; DROP TABLE x"), "Invalid ENGINE_SETTINGS: expected ',' after 'a'"),
        (EngineSpec(settings="a = now()"), "Invalid ENGINE_SETTINGS: the value of 'a' must be a literal"),
        (EngineSpec(settings="a = b"), "the value of 'a' must be a literal"),
        (EngineSpec(settings="a = -'x'"), "the value of 'a' must be a literal"),
        (EngineSpec(settings="`a` = 1"), "Invalid ENGINE_SETTINGS: Invalid identifier name '`a`'"),
        (EngineSpec(settings="a"), "expected '<name> = <value>' for 'a'"),
        (EngineSpec(settings="a = 1 /* x */"), "expected ',' after 'a'"),
        (EngineSpec(settings="a = 'x"), "unterminated quote"),
        (EngineSpec(settings=" "), "Invalid ENGINE_SETTINGS: it is empty"),
        (EngineSpec(sorting_key=" "), "Invalid ENGINE_SORTING_KEY: Invalid SQL expression: it is empty"),
    ],
)
def test_engine_errors(spec: EngineSpec, message: str) -> None:
    with pytest.raises(EngineError) as info:
        engine_full(spec, COLS)
    assert message in str(info.value)


def test_parse_settings_normalises() -> None:
    assert parse_settings("a=1,b = 'x' , c=true, d = -2.5") == "a = 1, b = 'x', c = true, d = -2.5"
    with pytest.raises(EngineError, match="it is empty"):
        parse_settings("")


def test_canonical_engine_names() -> None:
    assert [canonical_engine_name(e.upper()) for e in ENGINES] == list(ENGINES)
    with pytest.raises(EngineError, match="Unsupported engine 'Kafka'"):
        canonical_engine_name("Kafka")


def test_quarantine_shape() -> None:
    cols = quarantine_columns(COLS)
    assert [(c.name, c.type) for c in cols] == [
        ("ts", "Nullable(String)"),
        ("foo.bar", "Nullable(String)"),
        ("name", "Nullable(String)"),
        ("f", "Nullable(String)"),
        ("n", "Nullable(String)"),
        ("sign", "Nullable(String)"),
        ("v", "Nullable(String)"),
        ("c__error_column", "Array(String)"),
        ("c__error", "Array(String)"),
        ("c__import_id", "Nullable(String)"),
        ("insertion_date", "DateTime"),
    ]
    assert cols[-1].sql() == "`insertion_date` DateTime DEFAULT now()"
    assert all(c.jsonpath is None and c.codec is None for c in cols)
    assert quarantine_engine(COLS) == QUARANTINE_ENGINE
    assert engine_full(QUARANTINE_ENGINE, cols) == (
        "MergeTree PARTITION BY toYear(insertion_date) ORDER BY insertion_date"
    )


def test_quarantine_renames_insertion_date_when_taken() -> None:
    cols = [Column("insertion_date", "DateTime", "$.insertion_date"), Column("x", "String", "$.x")]
    q = quarantine_columns(cols)
    assert [c.name for c in q] == [
        "insertion_date",
        "x",
        "c__error_column",
        "c__error",
        "c__import_id",
        "c__insertion_date",
    ]
    assert q[-1].sql() == "`c__insertion_date` DateTime DEFAULT now()"
    assert engine_full(quarantine_engine(cols), q) == (
        "MergeTree PARTITION BY toYear(c__insertion_date) ORDER BY c__insertion_date"
    )


def test_quarantine_ttl() -> None:
    spec = quarantine_engine(COLS, ttl_days=7)
    assert spec.ttl == "insertion_date + toIntervalDay(7)"
    assert engine_full(spec, quarantine_columns(COLS)).endswith("TTL insertion_date + toIntervalDay(7)")
