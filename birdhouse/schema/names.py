"""Identifier validation and quoting (SPEC §4.6, DESIGN invariant 6).

Every name that reaches SQL text (data sources, columns, tokens, workspaces)
passes through one of the validators here first. The patterns are strict on
purpose: a name that matches cannot contain a quote, a backtick, whitespace or
a statement separator, so quoting it is a formality rather than an escape job.
"""

from __future__ import annotations

import re

__all__ = [
    "COLUMN_NAME_RE",
    "DS_NAME_RE",
    "IDENTIFIER_RE",
    "MAX_NAME_LENGTH",
    "QUARANTINE_SUFFIX",
    "RESERVED_COLUMN_NAMES",
    "InvalidName",
    "quote_identifier",
    "validate_column_name",
    "validate_datasource_name",
    "validate_identifier",
]

MAX_NAME_LENGTH = 255
QUARANTINE_SUFFIX = "_quarantine"

# fullmatch is used everywhere; `$` alone would accept a trailing "\n".
DS_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
COLUMN_NAME_RE = re.compile(r"[A-Za-z_][.0-9A-Za-z_]*")
IDENTIFIER_RE = DS_NAME_RE

# `index` collides with the INDEX clause of CREATE TABLE column lists; Tinybird
# rejects it, so we do too (case-insensitively, as the SQL keyword is).
RESERVED_COLUMN_NAMES = frozenset({"index"})

# Error messages quote the offending name; a megabyte-long name would otherwise
# end up verbatim in logs and HTTP responses.
_QUOTE_LIMIT = 100


class InvalidName(ValueError):
    """A name that does not satisfy the pattern for its kind."""


def _shown(name: str) -> str:
    if len(name) > _QUOTE_LIMIT:
        return repr(name[:_QUOTE_LIMIT] + "…")
    return repr(name)


def _check(name: object, kind: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not isinstance(name, str):
        raise InvalidName(f"Invalid {kind} name: expected a string, got {type(name).__name__}")
    if not name:
        raise InvalidName(f"Invalid {kind} name: it is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"Invalid {kind} name {_shown(name)}: it is {len(name)} characters long, the maximum is {MAX_NAME_LENGTH}"
        )
    if pattern.fullmatch(name) is None:
        if name[0].isdigit():
            detail = "it must not start with a digit"
        else:
            detail = f"it must start with a letter or '_' and contain only {allowed}"
        raise InvalidName(f"Invalid {kind} name {_shown(name)}: {detail}")
    return name


# The engine caps a table name at 179 characters in a workspace database
# (file name limits minus the escaped database path), and the quarantine
# table adds 11: a longer name could never be created (SPEC §4.6 says 255).
MAX_DATASOURCE_NAME_LENGTH = 160


def validate_datasource_name(name: str) -> str:
    """Return ``name`` if it is a valid data source name, else raise InvalidName."""
    _check(name, "data source", DS_NAME_RE, "letters, digits and '_'")
    if len(name) > MAX_DATASOURCE_NAME_LENGTH:
        raise InvalidName(
            f"Invalid data source name {_shown(name)}: it is {len(name)} characters long, "
            f"the maximum is {MAX_DATASOURCE_NAME_LENGTH}"
        )
    if name.endswith(QUARANTINE_SUFFIX):
        # The suffix is reserved for the quarantine table created beside each DS.
        raise InvalidName(f"Invalid data source name {_shown(name)}: it must not end in '{QUARANTINE_SUFFIX}'")
    return name


def validate_column_name(name: str) -> str:
    """Return ``name`` if it is a valid column name, else raise InvalidName."""
    _check(name, "column", COLUMN_NAME_RE, "letters, digits, '_' and '.'")
    if name.lower() in RESERVED_COLUMN_NAMES:
        raise InvalidName(f"Invalid column name {_shown(name)}: it is a reserved word")
    return name


def validate_identifier(name: str) -> str:
    """Return ``name`` if it matches the generic identifier pattern, else raise InvalidName."""
    return _check(name, "identifier", IDENTIFIER_RE, "letters, digits and '_'")


def quote_identifier(name: str) -> str:
    """Backtick-quote an already-valid identifier or column name.

    This deliberately refuses anything outside the column pattern instead of
    escaping it: escaping would let an unvalidated name slip through silently.
    """
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or COLUMN_NAME_RE.fullmatch(name) is None:
        raise InvalidName(f"Refusing to quote unvalidated identifier {_shown(str(name))}")
    return f"`{name}`"
