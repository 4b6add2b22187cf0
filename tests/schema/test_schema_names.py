from __future__ import annotations

import pytest

from birdhouse.schema.names import (
    COLUMN_NAME_RE,
    DS_NAME_RE,
    InvalidName,
    quote_identifier,
    validate_column_name,
    validate_datasource_name,
    validate_identifier,
)


@pytest.mark.parametrize("name", ["events", "_x", "A1_b2", "a" * 160, "analytics_events"])
def test_valid_datasource_names(name: str) -> None:
    assert validate_datasource_name(name) == name
    assert DS_NAME_RE.fullmatch(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Invalid data source name: it is empty"),
        ("1abc", "Invalid data source name '1abc': it must not start with a digit"),
        (
            "a-b",
            "Invalid data source name 'a-b': it must start with a letter or '_' and contain only letters",
        ),
        ("a.b", "contain only letters, digits and '_'"),
        ("a;DROP TABLE x", "Invalid data source name 'a;DROP TABLE x'"),
        ("a`b", "Invalid data source name 'a`b'"),
        ("a'b", 'Invalid data source name "a\'b"'),
        ("events\n", "Invalid data source name 'events\\n'"),
        (
            "events_quarantine",
            "Invalid data source name 'events_quarantine': it must not end in '_quarantine'",
        ),
        ("a" * 256, "it is 256 characters long, the maximum is 255"),
        # The engine's table-name limit in a workspace database, with room for "_quarantine".
        ("a" * 161, "it is 161 characters long, the maximum is 160"),
    ],
)
def test_invalid_datasource_names(name: str, message: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_datasource_name(name)
    assert message in str(info.value)


def test_long_names_are_truncated_in_messages() -> None:
    with pytest.raises(InvalidName) as info:
        validate_datasource_name("x" * 10_000)
    assert len(str(info.value)) < 250
    assert "x" * 100 + "…" in str(info.value)


@pytest.mark.parametrize("name", ["foo.bar", "a", "_a.b.c", "Index_2", "indexes"])
def test_valid_column_names(name: str) -> None:
    assert validate_column_name(name) == name
    assert COLUMN_NAME_RE.fullmatch(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("index", "Invalid column name 'index': it is a reserved word"),
        ("INDEX", "Invalid column name 'INDEX': it is a reserved word"),
        (".a", "Invalid column name '.a': it must start with a letter or '_'"),
        ("9a", "Invalid column name '9a': it must not start with a digit"),
        ("a b", "Invalid column name 'a b'"),
        ("a`) ENGINE=Log; DROP", "Invalid column name 'a`) ENGINE=Log; DROP'"),
        ("", "Invalid column name: it is empty"),
    ],
)
def test_invalid_column_names(name: str, message: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_column_name(name)
    assert message in str(info.value)


def test_generic_identifier() -> None:
    assert validate_identifier("index_granularity") == "index_granularity"
    with pytest.raises(InvalidName, match=r"Invalid identifier name 'a\.b'"):
        validate_identifier("a.b")
    with pytest.raises(InvalidName, match="maximum is 255"):
        validate_identifier("a" * 256)


def test_non_string_name_is_rejected() -> None:
    with pytest.raises(InvalidName, match="expected a string, got int"):
        validate_identifier(5)  # type: ignore[arg-type]


def test_quote_identifier() -> None:
    assert quote_identifier("foo.bar") == "`foo.bar`"
    assert quote_identifier("events") == "`events`"


@pytest.mark.parametrize("name", ["a`b", "a;DROP TABLE x", "", "x" * 256, "a b", "1a", "a\\`"])
def test_quote_identifier_refuses_unvalidated(name: str) -> None:
    with pytest.raises(InvalidName, match="Refusing to quote unvalidated identifier"):
        quote_identifier(name)
