from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birdhouse.schema.datetimes import (
    civil_from_days,
    date_kind,
    days_from_civil,
    decimal_to_nanos,
    format_date,
    format_datetime,
    parse_datetime_text,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _epoch(text: str) -> int:
    return int((dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC) - EPOCH).total_seconds())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-04-05", (_epoch("2020-04-05T00:00:00"), 0)),
        ("2020-04-05 00:05:38", (_epoch("2020-04-05T00:05:38"), 0)),
        ("2022-10-27T11:43:02.099Z", (_epoch("2022-10-27T11:43:02"), 99_000_000)),
        ("2024-01-01T00:00:00.123456+00:00", (_epoch("2024-01-01T00:00:00"), 123_456_000)),
        ("2024-01-15T10:30:00.123456789Z", (1705314600, 123_456_789)),
        ("2024-01-15T10:30", (1705314600, 0)),
        ("2024-01-15 10:30:00.1", (1705314600, 100_000_000)),
        ("2024-01-15t10:30:00z", (1705314600, 0)),
        ("2024-01-15T10:30:00,5Z", (1705314600, 500_000_000)),
        # offsets: the UTC instant
        ("2024-01-15T19:30:00+09:00", (1705314600, 0)),
        ("2024-01-15T19:30:00+0900", (1705314600, 0)),
        ("2024-01-15T19:30:00+09", (1705314600, 0)),
        ("2024-01-15T05:00:00-05:30", (1705314600, 0)),
        ("2024-01-15T10:30:00.000000001-00:00", (1705314600, 1)),
        # basic form
        ("20240115T103000", (1705314600, 0)),
        ("20240115T103000.25Z", (1705314600, 250_000_000)),
        ("20240115T193000+0900", (1705314600, 0)),
        # calendar edges
        ("2024-02-29", (_epoch("2024-02-29T00:00:00"), 0)),
        ("2000-02-29 23:59:59", (_epoch("2000-02-29T23:59:59"), 0)),
        ("1900-01-01", (-2208988800, 0)),
        ("1969-12-31T23:59:59.999999999Z", (-1, 999_999_999)),
    ],
)
def test_parse_accepted_forms(text: str, expected: tuple[int, int]) -> None:
    assert parse_datetime_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Jan 15 2024",
        "15 January 2024",
        "Mon, 15 Jan 2024 10:30:00 +0000",  # RFC 2822
        "10:30:00",
        "1/15/2024",
        "2024-1-15",
        "2024-01-15T10",
        "2024-01-15T10:30:00.1234567890Z",  # 10 fractional digits
        "2024-13-01",
        "2024-00-01",
        "2023-02-29",
        "2024-04-31",
        "2024-01-00",
        "2024-01-15T24:00:00",
        "2024-01-15T23:60:00",
        "2024-01-15T23:59:60",
        "2024-01-15T10:30:00+24:00",
        "2024-01-15T10:30:00+09:60",
        "2024-01-15Z",
        " 2024-01-15",
        "2024-01-15 ",
        "20240115",
        "1705314600",
        "٢٠٢٤-٠١-١٥",  # Arabic-Indic digits are not ASCII digits
        "2024-01-15T10:30:00UTC",
    ],
)
def test_parse_rejected_forms(text: str) -> None:
    assert parse_datetime_text(text) is None


@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_parse_matches_stdlib(value: dt.datetime) -> None:
    expected = value.replace(tzinfo=dt.UTC) - EPOCH
    seconds = expected.days * 86400 + expected.seconds
    assert parse_datetime_text(value.isoformat()) == (seconds, value.microsecond * 1000)
    assert parse_datetime_text(value.isoformat(sep=" ") + "Z") == (seconds, value.microsecond * 1000)


@given(st.integers(min_value=-1_000_000, max_value=3_000_000))
def test_civil_round_trip(days: int) -> None:
    y, m, d = civil_from_days(days)
    assert days_from_civil(y, m, d) == days
    if 1 <= y <= 9999:
        assert dt.date(y, m, d) == dt.date(1970, 1, 1) + dt.timedelta(days=days)


def test_format_helpers() -> None:
    assert format_date(0) == "1970-01-01"
    assert format_date(-25567) == "1900-01-01"
    assert format_datetime(1705314600, 123_456_789, 9) == "2024-01-15 10:30:00.123456789"
    assert format_datetime(1705314600, 123_456_789, 3) == "2024-01-15 10:30:00.123"
    assert format_datetime(-1, 0) == "1969-12-31 23:59:59"


@pytest.mark.parametrize(
    ("value", "shift", "expected"),
    [
        (Decimal("1705314600.123456789"), 0, 1705314600_123456789),
        (Decimal("1705314600.1234567899"), 0, 1705314600_123456789),  # floor, never rounded up
        (
            Decimal("1.9999999999999999999999999999999999999999999999999999999999999999999999999999999"),
            0,
            1_999_999_999,
        ),
        (Decimal("-0.5"), 0, -500_000_000),
        (Decimal("-0.0000000001"), 0, -1),  # floor of a negative below 1 ns
        (Decimal("0.0000000001"), 0, 0),
        (Decimal("1E-30"), 0, 0),
        (Decimal("-1E-30"), 0, -1),
        (Decimal("1705314600123.456"), -3, 1705314600_123456000),
        (Decimal("1.5E+3"), 0, 1500 * 10**9),
        (Decimal("0"), 0, 0),
        (Decimal("1E+17"), 0, None),
        (Decimal("1E+999"), 0, None),
    ],
)
def test_decimal_to_nanos(value: Decimal, shift: int, expected: int | None) -> None:
    assert decimal_to_nanos(value, shift) == expected


@pytest.mark.parametrize(
    ("name", "precision", "min_text", "max_text"),
    [
        ("Date", None, "1970-01-01", "2149-06-06"),
        ("Date32", None, "1900-01-01", "2299-12-31"),
        ("DateTime", None, "1970-01-01 00:00:00", "2106-02-07 06:28:15"),
        ("DateTime64", 0, "1900-01-01 00:00:00", "2299-12-31 23:59:59"),
        ("DateTime64", 3, "1900-01-01 00:00:00.000", "2299-12-31 23:59:59.999"),
        ("DateTime64", 6, "1900-01-01 00:00:00.000000", "2299-12-31 23:59:59.999999"),
        ("DateTime64", 9, "1900-01-01 00:00:00.000000000", "2262-04-11 23:47:16.854775807"),
    ],
)
def test_ranges(name: str, precision: int | None, min_text: str, max_text: str) -> None:
    kind = date_kind(name, precision)
    assert (kind.min_text, kind.max_text) == (min_text, max_text)
    assert kind.min_ticks < kind.max_ticks


def test_range_edges() -> None:
    date = date_kind("Date")
    assert date.to_ticks(0, 0) == 0
    assert date.to_ticks(-1, 0) is None
    assert date.to_ticks(days_from_civil(2149, 6, 6) * 86400 + 86399, 0) == 65535
    assert date.to_ticks(days_from_civil(2149, 6, 7) * 86400, 0) is None
    datetime_ = date_kind("DateTime")
    assert datetime_.to_ticks(4294967295, 999_999_999) == 4294967295  # fraction dropped
    assert datetime_.to_ticks(4294967296, 0) is None
    dt9 = date_kind("DateTime64", 9)
    assert dt9.to_ticks(9223372036, 854_775_807) == (1 << 63) - 1
    assert dt9.to_ticks(9223372036, 854_775_808) is None
    assert dt9.to_ticks(-2208988800, 0) == -2208988800 * 10**9
    assert dt9.to_ticks(-2208988801, 999_999_999) is None
    dt3 = date_kind("DateTime64", 3)
    assert dt3.to_ticks(1705314600, 123_999_999) == 1705314600123  # floor, not round
    assert date_kind("DateTime64").precision == 3  # DateTime64 without P: the engine's default


def test_output_forms() -> None:
    assert date_kind("Date").output(19737) == "2024-01-15"
    assert date_kind("DateTime").output(1705314600) == 1705314600
    assert date_kind("DateTime64", 0).output(5) == 5
    dt9 = date_kind("DateTime64", 9)
    assert msgspec.json.encode(dt9.output(1705314600_123456789)) == b"1705314600.123456789"
    assert msgspec.json.encode(dt9.output(-2208988800_500000000)) == b"-2208988800.500000000"
    assert msgspec.json.encode(dt9.output(1)) == b"0.000000001"
    assert msgspec.json.encode(dt9.output(-1)) == b"-0.000000001"
    assert msgspec.json.encode(date_kind("DateTime64", 3).output(-1)) == b"-0.001"
