"""Inference on real client payloads, and properties over random JSON: whatever is inferred
parses as a schema and ingests the sampled rows through the Converter."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from birdhouse.schema.columns import Column, parse_schema
from birdhouse.schema.convert import Converter
from birdhouse.schema.datetimes import date_kind, parse_datetime_text
from birdhouse.schema.engine import engine_full
from birdhouse.schema.infer import Inference, infer_schema
from birdhouse.schema.jsonpath import parse_jsonpath

FLOCK = [
    {
        "timestamp": "2022-10-27T11:43:02.099Z",
        "action": "page_hit",
        "version": "1",
        "session_id": "1f0f8b0e-5e0b-4c5e-9d6a-2f1a4c1d9e01",
        "tenant_id": "",
        "domain": "example.com",
        "payload": {
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "locale": "en-US",
            "location": "ES",
            "referrer": "https://www.google.com/",
            "pathname": "/blog",
            "href": "https://example.com/blog",
        },
    },
    {
        "timestamp": "2022-10-27T11:44:10.000Z",
        "action": "page_hit",
        "version": "1",
        "session_id": "7c2a3d4e-0000-4c5e-9d6a-2f1a4c1d9e02",
        "tenant_id": "",
        "domain": "example.com",
        "payload": {
            "user-agent": "Mozilla/5.0 (Macintosh)",
            "locale": "es-ES",
            "location": "FR",
            "referrer": "",
            "pathname": "/",
            "href": "https://example.com/",
        },
    },
]

OTEL_LOGS = [
    {
        "resource_schema_url": "",
        "resource_attributes": {"service.name": "checkout", "host.name": "web-1"},
        "service_name": "checkout",
        "scope_name": "app",
        "scope_attributes": {},
        "log_attributes": {"http.method": "GET", "http.status_code": "200", "user.id": "u1"},
        "timestamp": "2024-01-15T10:30:00.123456789Z",
        "observed_timestamp": "2024-01-15T10:30:00.2Z",
        "flags": 0,
        "severity_text": "INFO",
        "severity_number": 9,
        "body": "request served",
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
    },
    {
        "resource_schema_url": "",
        "resource_attributes": {"service.name": "checkout", "host.name": "web-2"},
        "service_name": "checkout",
        "scope_name": "app",
        "scope_attributes": {},
        "log_attributes": {"http.method": "POST", "user.id": "u2", "error.kind": "timeout"},
        "timestamp": "2024-01-15T10:30:01.5Z",
        "observed_timestamp": "2024-01-15T10:30:01.6Z",
        "flags": 1,
        "severity_text": "ERROR",
        "severity_number": 17,
        "body": "upstream timed out",
        "trace_id": "",
        "span_id": "",
    },
]


def ndjson(rows: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def assert_ingests_cleanly(inference: Inference, sample: bytes) -> None:
    converted = Converter(inference.columns).convert(sample)
    assert converted.quarantined_rows == 0
    assert converted.successful_rows == inference.rows


def test_flock_web_analytics_events() -> None:
    sample = ndjson(FLOCK)
    inference = infer_schema(sample)
    assert inference.schema == (
        "action String `json:$.action`, domain String `json:$.domain`, "
        # Path order: `['` sorts before letters.
        "payload_user_agent String `json:$.payload.['user-agent']`, "
        "payload_href String `json:$.payload.href`, payload_locale String `json:$.payload.locale`, "
        "payload_location String `json:$.payload.location`, payload_pathname String `json:$.payload.pathname`, "
        "payload_referrer String `json:$.payload.referrer`, session_id String `json:$.session_id`, "
        "tenant_id String `json:$.tenant_id`, timestamp DateTime64(3) `json:$.timestamp`, "
        "version String `json:$.version`"
    )
    # action, domain, tenant_id and version have one value each; ties keep column order.
    assert inference.engine.sorting_key == "timestamp, action, domain, tenant_id"
    assert inference.engine.partition_key == "toYear(timestamp)"
    assert_ingests_cleanly(inference, sample)


def test_otel_logs_with_nested_attributes() -> None:
    sample = ndjson(OTEL_LOGS)
    inference = infer_schema(sample)
    types = {c.name: (c.jsonpath, c.type) for c in inference.columns}
    assert types["timestamp"] == ("$.timestamp", "DateTime64(3)")
    assert types["resource_attributes_service_name"] == ("$.resource_attributes.['service.name']", "String")
    assert types["log_attributes_http_method"] == ("$.log_attributes.['http.method']", "String")
    assert types["log_attributes_http_status_code"] == (
        "$.log_attributes.['http.status_code']",
        "Nullable(String)",
    )
    assert types["log_attributes_error_kind"] == ("$.log_attributes.['error.kind']", "Nullable(String)")
    assert types["severity_number"] == ("$.severity_number", "Int16")
    assert types["flags"] == ("$.flags", "Int16")
    assert "scope_attributes" not in types  # an always-empty object gives nothing
    nullable = [c.name for c in inference.columns if c.nullable]
    assert nullable == ["log_attributes_error_kind", "log_attributes_http_status_code"]  # at the end: 50 %
    # The first date in column (path) order, then the single-valued columns in column order.
    assert inference.engine.sorting_key == (
        "observed_timestamp, resource_attributes_service_name, resource_schema_url, scope_name"
    )
    assert_ingests_cleanly(inference, sample)


# --- properties ------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "a-b", "a.b", "a_b", "$x", "1", "index", "it's", "b\\s", "sp ace", "ü", "", "_"])
DATES = st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2299, 12, 30))
DATE_FORMATS = st.sampled_from(["%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M"])
DATE_TEXT = st.builds(lambda d, f: d.strftime(f), DATES, DATE_FORMATS)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | DATE_TEXT
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=12
)
ROWS = st.lists(st.dictionaries(KEYS | st.text(max_size=4), VALUES, max_size=5), min_size=1, max_size=6)


def date_mismatch(columns: list[Column], row: dict[str, Any]) -> bool:
    """Whether the row has, in a date column, a string that is not a date in that column's range:
    the one case §9.2 itself lets through (more than 80 % dates is enough to pick a date type)."""
    for column in columns:
        element = column.ch_type.inner if column.ch_type.name == "Array" else column.ch_type
        base = element.unwrap()
        if not base.name.startswith("Date"):
            continue
        kind = date_kind(base.name, base.args[0] if base.args and isinstance(base.args[0], int) else None)
        value = parse_jsonpath(str(column.jsonpath)).extract(row)
        for text in value if isinstance(value, list) else [value]:
            instant = parse_datetime_text(text) if isinstance(text, str) else (0, 0)
            if instant is None or kind.to_ticks(*instant) is None:
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(ROWS)
def test_random_json_infers_a_schema_that_parses_and_ingests(rows: list[dict[str, Any]]) -> None:
    sample = ndjson(rows)
    inference = infer_schema(sample)
    assert inference.rows == len(rows)
    if inference.columns:
        assert parse_schema(inference.schema) == inference.columns
        assert engine_full(inference.engine, inference.columns).startswith("MergeTree")
    converted = Converter(inference.columns).convert(sample, details=True)
    assert converted.successful_rows + converted.quarantined_rows == len(rows)
    # Rows are quarantined only where a date column meets a non-date (which Nullable would have nulled).
    for note in converted.details:
        assert date_mismatch(inference.columns, rows[note["line"] - 1]), note


LEAVES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(min_value=-(2**65), max_value=2**65),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "text": st.text(alphabet="abcxyz -_.:/é", max_size=8),  # no digits: never a date
    "date": DATE_TEXT,
}
SHAPES = st.recursive(
    st.sampled_from(sorted(LEAVES)),
    lambda inner: st.dictionaries(KEYS, inner, min_size=1, max_size=3) | st.tuples(st.just("array"), inner),
    max_leaves=8,
)


def fill(shape: Any, data: st.DataObject) -> Any:
    if isinstance(shape, str):
        return data.draw(LEAVES[shape])
    if isinstance(shape, tuple):
        return [fill(shape[1], data) for _ in range(data.draw(st.integers(min_value=1, max_value=3)))]
    return {key: fill(sub, data) for key, sub in shape.items()}


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, SHAPES, min_size=1, max_size=4), st.data())
def test_rows_with_every_path_ingest_without_quarantine(shape: dict[str, Any], data: st.DataObject) -> None:
    rows = [fill(shape, data) for _ in range(data.draw(st.integers(min_value=1, max_value=5)))]
    sample = ndjson(rows)
    inference = infer_schema(sample)
    assert not any(c.nullable or c.default_kind for c in inference.columns), inference.schema
    assert_ingests_cleanly(inference, sample)
