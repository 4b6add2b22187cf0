from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birdhouse.schema.columns import Column
from birdhouse.schema.datafile import (
    DatafileError,
    DatasourceFile,
    parse_datasource_file,
    render_datasource_file,
)
from birdhouse.schema.engine import EngineSpec, engine_sql

from .test_schema_columns import columns

FLOCK = """\
TOKEN "tracker" APPEND
DESCRIPTION >
    Analytics events landing data source
SCHEMA >
    `timestamp` DateTime `json:$.timestamp`,
    `session_id` String `json:$.session_id`,
    `action` LowCardinality(String) `json:$.action`,
    `version` LowCardinality(String) `json:$.version`,
    `payload` String `json:$.payload`,
    `tenant_id` String `json:$.tenant_id` DEFAULT '',
    `domain` String `json:$.domain` DEFAULT ''
ENGINE "MergeTree"
ENGINE_PARTITION_KEY "toYYYYMM(timestamp)"
ENGINE_SORTING_KEY "timestamp"
ENGINE_TTL "timestamp + toIntervalDay(60)"
"""


def test_flock_analytics_events() -> None:
    ds = parse_datasource_file(FLOCK)
    assert ds.description == "Analytics events landing data source"
    assert ds.tokens == [("tracker", "APPEND")]
    assert ds.tags == []
    assert ds.indexes == []
    assert [(c.name, c.type, c.jsonpath, c.default_expr) for c in ds.columns] == [
        ("timestamp", "DateTime", "$.timestamp", None),
        ("session_id", "String", "$.session_id", None),
        ("action", "LowCardinality(String)", "$.action", None),
        ("version", "LowCardinality(String)", "$.version", None),
        ("payload", "String", "$.payload", None),
        ("tenant_id", "String", "$.tenant_id", "''"),
        ("domain", "String", "$.domain", "''"),
    ]
    assert ds.engine == EngineSpec(
        "MergeTree",
        sorting_key="timestamp",
        partition_key="toYYYYMM(timestamp)",
        ttl="timestamp + toIntervalDay(60)",
    )
    assert engine_sql(ds.engine, ds.columns) == (
        "ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY timestamp TTL timestamp + toIntervalDay(60)"
    )
    rendered = render_datasource_file(ds.description, ds.columns, ds.engine, ds.tokens, ds.tags, ds.indexes)
    assert parse_datasource_file(rendered) == ds
    assert msgspec.json.decode(msgspec.json.encode(ds), type=DatasourceFile) == ds


def test_every_keyword() -> None:
    text = """\
# a comment line
DESCRIPTION >
    First line

      indented second line
TOKEN reader READ
TOKEN "app writer" append
TAGS "web, analytics ,"
SCHEMA >
    ts DateTime `json:$.ts`
    sign Int8 `json:$.sign`
    v UInt64 `json:$.v`,
    INDEX skipped v TYPE minmax GRANULARITY 1
INDEXES >
    idx_v v TYPE minmax GRANULARITY 4
    idx_ts (ts, v) TYPE set(100) GRANULARITY 1,
ENGINE VersionedCollapsingMergeTree
ENGINE_SORTING_KEY "ts, v"
ENGINE_PARTITION_KEY toYYYYMM(ts)
ENGINE_PRIMARY_KEY "ts"
ENGINE_TTL >
    ts + toIntervalDay(30)
ENGINE_SETTINGS "index_granularity = 8192"
ENGINE_SIGN sign
ENGINE_VERSION "v"
"""
    ds = parse_datasource_file(text)
    assert ds.description == "First line\n\n  indented second line"
    assert ds.tokens == [("reader", "READ"), ("app writer", "APPEND")]
    assert ds.tags == ["web", "analytics"]
    assert [c.name for c in ds.columns] == ["ts", "sign", "v"]
    assert ds.indexes == ["idx_v v TYPE minmax GRANULARITY 4", "idx_ts (ts, v) TYPE set(100) GRANULARITY 1"]
    assert ds.engine == EngineSpec(
        "VersionedCollapsingMergeTree",
        sorting_key="ts, v",
        partition_key="toYYYYMM(ts)",
        primary_key="ts",
        ttl="ts + toIntervalDay(30)",
        sign="sign",
        version="v",
        settings="index_granularity = 8192",
    )
    rendered = render_datasource_file(ds.description, ds.columns, ds.engine, ds.tokens, ds.tags, ds.indexes)
    assert parse_datasource_file(rendered) == ds


def test_minimal_file_and_engine_name_case() -> None:
    ds = parse_datasource_file("SCHEMA >\n    a Int8\nENGINE replacingmergetree\nENGINE_VER a\n")
    assert ds.engine == EngineSpec("ReplacingMergeTree", ver="a")
    assert ds.description is None
    assert parse_datasource_file("SCHEMA >\n  a Int8\r\nTAGS a, b\r\n").tags == ["a", "b"]
    assert parse_datasource_file('DESCRIPTION "one liner"\nSCHEMA >\n  a Int8').description == "one liner"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DESCRIPTION >\n    x\n", "SCHEMA is required"),
        (
            "SCHEMA >\n    a Int8\nFORWARD_QUERY >\n    SELECT 1\n",
            "Line 3: FORWARD_QUERY is not supported by birdhouse",
        ),
        ("SCHEMA >\n    a Int8\nBACKFILL skip\n", "Line 3: BACKFILL is not supported by birdhouse"),
        (
            "SHARED_WITH >\n    ws\nSCHEMA >\n    a Int8\n",
            "Line 1: SHARED_WITH is not supported by birdhouse",
        ),
        ("SCHEMA >\n    a Int8\nKAFKA_TOPIC t\n", "Line 3: KAFKA_TOPIC is not supported by birdhouse"),
        (
            "SCHEMA >\n    a Int8\n\nIMPORT_SERVICE s3\n",
            "Line 4: IMPORT_SERVICE is not supported by birdhouse",
        ),
        ("SCHEMA >\n    a Int8\nVERSION 1\n", "Line 3: unknown keyword VERSION"),
        ("SCHEMA >\n    a Int8\nFOO bar\n", "Line 3: unknown keyword FOO"),
        ('SCHEMA >\n    a Int8\n"quoted" x\n', "Line 3: expected a keyword, got '\"quoted\" x'"),
        ("  SCHEMA >\n    a Int8\n", "Line 1: unexpected indented line outside a block"),
        ("SCHEMA a Int8\n", "Line 1: SCHEMA must be followed by '>' and an indented block"),
        ("SCHEMA >\n    a Int8\nSCHEMA >\n    b Int8\n", "Line 3: SCHEMA appears more than once"),
        ("SCHEMA >\n    a Int8\nENGINE_TTL\n", "Line 3: ENGINE_TTL needs a value"),
        ('SCHEMA >\n    a Int8\nENGINE_TTL ""\n', "Line 3: ENGINE_TTL needs a value"),
        (
            "SCHEMA >\n    a Int8\nTOKEN x\n",
            'Line 3: TOKEN needs a name and a scope: TOKEN "name" READ|APPEND',
        ),
        ("SCHEMA >\n    a Int8\nTOKEN x ADMIN\n", "Line 3: TOKEN scope must be READ or APPEND, got 'ADMIN'"),
        ('SCHEMA >\n    a Int8\nTOKEN "x\ty" READ\n', "Line 3: invalid TOKEN name"),
        ("SCHEMA >\n    a Int8, a Int8\n", "Line 1: SCHEMA: Duplicated column name 'a'"),
        ("SCHEMA >\n    a Int8 DEFAULT 1;DROP TABLE x\n", "Line 1: SCHEMA: Invalid column 'a'"),
        ("SCHEMA >\n    a Int8\nINDEXES >\n    nonsense\n", "Line 3: INDEXES lines are 'name expr TYPE type"),
        ("SCHEMA >\n    a Int8\nINDEXES >\n    i a TYPE minmax; DROP\n", "Line 3: invalid index"),
        ("SCHEMA >\n    a Int8\nENGINE Kafka\n", "Unsupported engine 'Kafka'"),
        (
            'SCHEMA >\n    a Int8\nENGINE_SORTING_KEY "a) ENGINE=Log; DROP TABLE x"\n',
            "Invalid ENGINE_SORTING_KEY",
        ),
        ("SCHEMA >\n    a Int8\nENGINE_SIGN a\n", "ENGINE_SIGN is not valid with the MergeTree engine"),
        (
            "SCHEMA >\n    a Int8\nENGINE CollapsingMergeTree\n",
            "ENGINE_SIGN is required by the CollapsingMergeTree",
        ),
        ('SCHEMA >\n    a Int8\nENGINE_SETTINGS "x = now()"\n', "the value of 'x' must be a literal"),
    ],
)
def test_datafile_errors(text: str, message: str) -> None:
    with pytest.raises(DatafileError) as info:
        parse_datasource_file(text)
    assert message in str(info.value)


def test_check_types_off_for_aggregate_targets() -> None:
    text = "SCHEMA >\n    k String\n    n AggregateFunction(count)\nENGINE AggregatingMergeTree\n"
    with pytest.raises(DatafileError, match="Unsupported type: AggregateFunction"):
        parse_datasource_file(text)
    ds = parse_datasource_file(text, check_types=False)
    assert ds.columns[1] == Column("n", "AggregateFunction(count)")


# --- Hypothesis: render → parse is the identity ------------------------------------------------

_LINE = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters="\x85"),
    min_size=1,
    max_size=30,
).map(str.strip)
_DESCRIPTION = st.one_of(st.none(), st.lists(_LINE.filter(bool), min_size=1, max_size=3).map("\n".join))
_TOKEN = st.tuples(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,20}", fullmatch=True), st.sampled_from(["READ", "APPEND"])
)
_TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ -]{0,10}[A-Za-z0-9_]|[A-Za-z0-9_]", fullmatch=True)
_INDEX = st.sampled_from(["i1 a TYPE minmax GRANULARITY 1", "i2 (a, b) TYPE bloom_filter(0.01) GRANULARITY 4"])


@st.composite
def engines(draw: st.DrawFn, cols: list[Column]) -> EngineSpec:
    names = [c.name for c in cols]
    key = draw(st.one_of(st.none(), st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)))
    sorting_key = ", ".join(f"`{n}`" for n in key) if key else None
    return EngineSpec(
        draw(st.sampled_from(["MergeTree", "ReplacingMergeTree", "SummingMergeTree", "AggregatingMergeTree"])),
        sorting_key=sorting_key,
        partition_key=draw(st.one_of(st.none(), st.just("toYear(now())"))),
        ttl=draw(st.one_of(st.none(), st.just("toDate(now()) + toIntervalDay(1)"))),
        settings=draw(st.one_of(st.none(), st.just("index_granularity = 8192"))),
    )


@given(st.data())
def test_datafile_render_parse_round_trip(data: st.DataObject) -> None:
    cols = data.draw(columns())
    ds = DatasourceFile(
        cols,
        data.draw(engines(cols)),
        data.draw(_DESCRIPTION),
        data.draw(st.lists(_TOKEN, max_size=3)),
        data.draw(st.lists(_TAG, max_size=3)),
        data.draw(st.lists(_INDEX, max_size=2, unique=True)),
    )
    text = render_datasource_file(ds.description, ds.columns, ds.engine, ds.tokens, ds.tags, ds.indexes)
    assert parse_datasource_file(text) == ds
