"""The converter's output forms are what the real engine parses (chDB through the ``backend`` fixture)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from birdhouse.backends import Backend
from birdhouse.schema.columns import Column, parse_schema
from birdhouse.schema.convert import Converter
from birdhouse.schema.engine import engine_sql, quarantine_columns, quarantine_engine

SCHEMA = """
    id UInt32 `json:$.id`,
    ts DateTime `json:$.ts`,
    ts_tokyo DateTime('Asia/Tokyo') `json:$.ts`,
    ns DateTime64(9) `json:$.ns`,
    ns_tokyo DateTime64(3, 'Asia/Tokyo') `json:$.ns`,
    us DateTime64(6, 'America/New_York') `json:$.ns`,
    day Date `json:$.ns`,
    day32 Date32 `json:$.old`,
    old64 DateTime64(3) `json:$.old`,
    dec Decimal(38, 10) `json:$.dec`,
    dec_small Decimal(5, 2) `json:$.dec2`,
    u UUID `json:$.uuid`,
    big UInt64 `json:$.big`,
    i128 Int128 `json:$.i128`,
    u256 UInt256 `json:$.u256`,
    fs FixedString(4) `json:$.fs`,
    f32 Float32 `json:$.f`,
    f64 Float64 `json:$.f`,
    ok Bool `json:$.ok`,
    lc LowCardinality(String) `json:$.lc`,
    payload String `json:$.payload`,
    tags Array(String) `json:$.tags`,
    nums Array(Nullable(Int8)) `json:$.nums`,
    item_ids Array(String) `json:$.items[:].id`,
    m Map(Int32, String) `json:$.m`,
    mt Map(DateTime, UInt8) `json:$.mt`,
    mu Map(UUID, Array(Nullable(String))) `json:$.mu`,
    maybe Nullable(Int64) `json:$.maybe`,
    maybe_dt Nullable(DateTime64(3)) `json:$.maybe_dt`,
    with_default Int32 `json:$.with_default` DEFAULT 42,
    inserted DateTime DEFAULT now(),
    doubled UInt64 MATERIALIZED id * 2,
    raw String `json:$`
"""

EVENT: dict[str, Any] = {
    "id": 1,
    "ts": "2024-01-15T19:30:00+09:00",
    "ns": "2024-01-15T10:30:00.123456789Z",
    "old": "1900-01-01T00:00:00.001Z",
    "dec": "1234567890123456789012345678.01234567891",
    "dec2": 999.994,
    "uuid": "{550E8400-E29B-41D4-A716-446655440000}",
    "big": "18446744073709551615",
    "i128": -(2**127),
    "u256": 2**256 - 1,
    "fs": "ab",
    "f": 0.1,
    "ok": 1,
    "lc": "x",
    "payload": {"k": [1, 2.50, "é"]},
    "tags": ["a", "b"],
    "nums": [1, 300, None, "x"],
    "items": [{"id": "i1"}, {"id": "i2"}],
    "m": {"1": "one", "-5": "minus five"},
    "mt": {"1970-01-01T00:01:39Z": 1, "2024-01-15 10:30:00": 2},
    "mu": {"550e8400e29b41d4a716446655440000": ["x", None]},
    "maybe_dt": "not a date",
}
SECOND: dict[str, Any] = {
    "id": 2,
    "ts": 1705314600123,
    "ns": 1705314600.5,
    "old": -2208988800,
    "dec": -0.5,
    "dec2": "-1",
    "f": 3.4028235e38,
    "uuid": "urn:uuid:00000000-0000-0000-0000-000000000000",
    "big": 0,
    "i128": "5",
    "u256": "0",
    "fs": "abcd",
    "ok": False,
    "lc": "",
    "payload": "plain",
    "tags": None,
    "nums": [],
    "items": [],
    "m": {},
    "mt": {},
    "mu": {},
    "maybe": 7,
    "maybe_dt": 1705314600,
    "with_default": 5,
}


# Aliases get a q_ prefix: an alias equal to a column name would replace the column everywhere.
SELECT = [
    "id",
    "toUnixTimestamp(ts) AS q_ts",
    "toUnixTimestamp(ts_tokyo) AS q_ts_tokyo",
    "toString(ts_tokyo) AS q_ts_tokyo_s",
    "toUnixTimestamp64Nano(ns) AS q_ns",
    "toString(ns) AS q_ns_s",
    "toUnixTimestamp64Milli(ns_tokyo) AS q_ns_tokyo",
    "toString(ns_tokyo) AS q_ns_tokyo_s",
    "toUnixTimestamp64Micro(us) AS q_us",
    "toString(day) AS q_day",
    "toString(day32) AS q_day32",
    "toUnixTimestamp64Milli(old64) AS q_old64",
    "toString(dec) AS q_dec",
    "toString(dec_small) AS q_dec_small",
    "toString(u) AS q_u",
    "toString(big) AS q_big",
    "toString(i128) AS q_i128",
    "toString(u256) AS q_u256",
    "hex(fs) AS q_fs",
    "toString(f32) AS q_f32",
    "f64",
    "ok",
    "lc",
    "payload",
    "tags",
    "nums",
    "item_ids",
    "m",
    "mapApply((k, v) -> (toUnixTimestamp(k), v), mt) AS q_mt",
    "mu",
    "maybe",
    "toString(maybe_dt) AS q_maybe_dt",
    "with_default",
    "inserted > toDateTime('2020-01-01') AS q_inserted_now",
    "doubled",
    "raw",
]


def _rows(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines()]


@pytest.mark.parametrize("date_time_input_format", ["best_effort", "basic"])
def test_engine_stores_converted_values(backend: Backend, date_time_input_format: str) -> None:
    columns = parse_schema(SCHEMA)
    backend.command(f"CREATE TABLE events ({', '.join(c.sql() for c in columns)}) ENGINE = MergeTree ORDER BY tuple()")
    out = Converter(columns).convert((json.dumps(EVENT) + "\n" + json.dumps(SECOND) + "\n").encode())
    assert (out.successful_rows, out.quarantined_rows) == (2, 0), out.quarantine
    written = backend.insert(
        "events",
        out.rows,
        "JSONEachRow",
        columns=out.columns,
        settings={"date_time_input_format": date_time_input_format},
    )
    assert written == 2
    result = backend.query(
        f"SELECT {', '.join(SELECT)} FROM events ORDER BY id",
        "JSONEachRow",
        settings={"output_format_json_quote_64bit_integers": 0},
    )
    first, second = ({k.removeprefix("q_"): v for k, v in r.items()} for r in _rows(result.body))
    assert first == {
        "id": 1,
        "ts": 1705314600,
        "ts_tokyo": 1705314600,  # the UTC instant; the zone only changes display
        "ts_tokyo_s": "2024-01-15 19:30:00",
        "ns": 1705314600123456789,  # all 9 digits (D14)
        "ns_s": "2024-01-15 10:30:00.123456789",
        "ns_tokyo": 1705314600123,
        "ns_tokyo_s": "2024-01-15 19:30:00.123",
        "us": 1705314600123456,
        "day": "2024-01-15",
        "day32": "1900-01-01",
        "old64": -2208988799999,
        "dec": "1234567890123456789012345678.0123456789",
        "dec_small": "999.99",
        "u": "550e8400-e29b-41d4-a716-446655440000",
        "big": "18446744073709551615",
        "i128": str(-(2**127)),
        "u256": str(2**256 - 1),
        "fs": "61620000",
        "f32": "0.1",
        "f64": 0.1,
        "ok": True,
        "lc": "x",
        "payload": '{"k":[1,2.5,"é"]}',
        "tags": ["a", "b"],
        "nums": [1, None, None, None],
        "item_ids": ["i1", "i2"],
        "m": {"1": "one", "-5": "minus five"},
        "mt": {"99": 1, "1705314600": 2},
        "mu": {"550e8400-e29b-41d4-a716-446655440000": ["x", None]},
        "maybe": None,
        "maybe_dt": None,
        "with_default": 42,
        "inserted_now": 1,
        "doubled": 2,
        "raw": json.dumps(EVENT),
    }
    assert second["ts"] == 1705314600  # epoch milliseconds reinterpreted
    assert second["ns"] == 1705314600500000000
    assert second["old64"] == -2208988800000
    assert second["day32"] == "1900-01-01"
    assert second["dec"] == "-0.5"
    assert second["dec_small"] == "-1"
    assert second["u"] == "00000000-0000-0000-0000-000000000000"
    assert (second["big"], second["i128"], second["u256"]) == ("0", "5", "0")
    assert second["fs"] == "61626364"
    assert second["f32"] == "3.4028235e38"
    assert second["tags"] == []
    assert (second["maybe"], second["maybe_dt"], second["with_default"]) == (7, "2024-01-15 10:30:00.000", 5)
    assert second["payload"] == "plain"


def test_engine_date_edges(backend: Backend) -> None:
    columns = parse_schema(
        "k UInt8 `json:$.k`, d DateTime `json:$.v`, d64 DateTime64(9) `json:$.v`, d32 Date32 `json:$.v`"
    )
    backend.command(f"CREATE TABLE edges ({', '.join(c.sql() for c in columns)}) ENGINE = MergeTree ORDER BY k")
    body = "\n".join(
        json.dumps({"k": k, "v": v})
        for k, v in enumerate(["1970-01-01 00:00:00", "2106-02-07T06:28:15Z", 0, "2024-02-29T12:00:00.000000001+00:00"])
    )
    out = Converter(columns).convert(body.encode())
    assert out.quarantined_rows == 0, out.quarantine
    backend.insert("edges", out.rows, columns=out.columns)
    result = backend.query(
        "SELECT k, toUnixTimestamp(d) AS d, toString(d64) AS d64, toString(d32) AS d32 FROM edges ORDER BY k"
    )
    assert _rows(result.body) == [
        {"k": 0, "d": 0, "d64": "1970-01-01 00:00:00.000000000", "d32": "1970-01-01"},
        {"k": 1, "d": 4294967295, "d64": "2106-02-07 06:28:15.000000000", "d32": "2106-02-07"},
        {"k": 2, "d": 0, "d64": "1970-01-01 00:00:00.000000000", "d32": "1970-01-01"},
        {"k": 3, "d": 1709208000, "d64": "2024-02-29 12:00:00.000000001", "d32": "2024-02-29"},
    ]


def test_engine_quarantine_round_trip(backend: Backend) -> None:
    columns = parse_schema(
        "id Int32 `json:$.id`, name String `json:$.name`, insertion_date DateTime `json:$.at` DEFAULT now(), "
        "total UInt64 MATERIALIZED id * 2"
    )
    qcols = quarantine_columns(columns)
    backend.command(
        f"CREATE TABLE events_quarantine ({', '.join(c.sql() for c in qcols)}) "
        f"{engine_sql(quarantine_engine(columns), qcols)}"
    )
    body = b'{"id": "x", "name": {"a": 1}, "at": "2024-01-15"}\nnot json\n[1]\n{"id": 1, "name": "ok"}\n{"name": 5}'
    out = Converter(columns).convert(body)
    assert (out.successful_rows, out.quarantined_rows) == (1, 4)
    assert backend.insert("events_quarantine", out.quarantine) == 4
    result = backend.query(
        "SELECT * EXCEPT c__insertion_date, c__insertion_date > toDateTime('2020-01-01') AS dated "
        "FROM events_quarantine ORDER BY c__error"
    )
    rows = _rows(result.body)
    assert [c.name for c in qcols][-1] == "c__insertion_date"  # the DS already has insertion_date
    m1 = (
        "Strict type checking failed. Object does not have column 'id', you should send a value or "
        "recreate the table with a Nullable column type. While accessing jsonpath '$.id'"
    )
    assert rows == [
        {
            "id": None,
            "name": None,
            "insertion_date": None,
            "c__error_column": [""],
            "c__error": ["JSON root must be an object, but it was a list"],
            "c__import_id": None,
            "dated": 1,
        },
        {
            "id": None,
            "name": None,
            "insertion_date": None,
            "c__error_column": [""],
            "c__error": ["Line is not a valid JSON: 'not json'"],
            "c__import_id": None,
            "dated": 1,
        },
        {
            "id": None,
            "name": "5",
            "insertion_date": None,
            "c__error_column": ["id", "name"],
            "c__error": [
                m1,
                "Strict type checking failed. Value 5 on column 'name' is a number when a String was "
                "expected. While accessing jsonpath '$.name'",
            ],
            "c__import_id": None,
            "dated": 1,
        },
        {
            "id": "x",
            "name": '{"a":1}',
            "insertion_date": "2024-01-15",
            "c__error_column": ["id"],
            "c__error": [
                "Strict type checking failed. Value x on column 'id' is a string when a Int32 was expected. "
                "While accessing jsonpath '$.id'"
            ],
            "c__import_id": None,
            "dated": 1,
        },
    ]


def test_engine_json_type_column(backend: Backend) -> None:
    columns = [
        Column("k", "UInt8", jsonpath="$.k"),
        Column("j", "JSON", jsonpath="$.j"),
        Column("doc", "JSON", jsonpath="$"),
    ]
    backend.command(f"CREATE TABLE js ({', '.join(c.sql() for c in columns)}) ENGINE = MergeTree ORDER BY k")
    out = Converter(columns).convert(b'{"k": 1, "j": {"a": {"b": 2}, "s": "x"}}')
    assert out.successful_rows == 1
    backend.insert("js", out.rows, columns=out.columns)
    result = backend.query("SELECT toString(j) AS j, toString(doc.k) AS k FROM js")
    assert _rows(result.body) == [{"j": '{"a":{"b":2},"s":"x"}', "k": "1"}]
