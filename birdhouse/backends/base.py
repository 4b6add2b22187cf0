"""The storage backend contract.

Every backend (embedded chDB, a ClickHouse server over HTTP) implements
:class:`Backend`. The rest of birdhouse speaks ClickHouse SQL to it and never
imports a backend module directly: :func:`birdhouse.backends.open_backend`
chooses one by DSN scheme.

Values never travel as SQL text: statements carry identifiers that were
validated before they got here, and data travels as query parameters
(``{name:Type}``) or as bytes in an input format (JSONEachRow).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class BackendError(Exception):
    """The engine refused or failed a statement.

    ``code`` is ClickHouse's numeric error code when the engine gave one, so
    callers can tell a user error (bad SQL, unknown table) from an outage.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class BackendUnavailable(BackendError):
    """The backend could not be reached at all (transient: retry later)."""


@dataclass(frozen=True)
class Capabilities:
    """What the engine behind a backend can do; detected once at open."""

    version: str
    insert_deduplication_token: bool = True
    low_cardinality: bool = True
    datetime64: bool = True
    map_type: bool = True
    bool_type: bool = True
    lightweight_delete: bool = True
    explain_ast: bool = True
    # Appended for the ClickHouse server backend (older servers lack these).
    # ``{name:Type}`` placeholders bound from ``params``.
    query_params: bool = True
    # LowCardinality exists but only behind allow_experimental_low_cardinality_type
    # (the backend adds that flag to DDL itself).
    low_cardinality_flag: bool = False
    # The MergeTree table setting non_replicated_deduplication_window.
    dedup_window: bool = True
    # Table-level TTL clauses in CREATE TABLE.
    ttl: bool = True
    # The backend keeps its own delivered-token ledger because the engine has
    # no insert_deduplication_token; replays are exactly-once either way.
    token_ledger: bool = False
    # Type family names the engine lists (system.data_type_families); empty
    # means not detected, so every type SPEC §4.2 admits is assumed present.
    data_types: frozenset[str] = frozenset()
    # JSONEachRow inserts evaluate a column's DEFAULT expression for an omitted
    # key (input_format_defaults_for_omitted_fields); without it omitted keys
    # get the type's zero value.
    insert_defaults: bool = True


@dataclass(frozen=True)
class QueryResult:
    """A statement's formatted output and the engine's own statistics."""

    body: bytes
    rows_read: int = 0
    bytes_read: int = 0
    elapsed_s: float = 0.0


@runtime_checkable
class Backend(Protocol):
    """One storage engine. Methods are blocking; the HTTP layer calls them from
    a worker thread so the event loop never waits on the engine."""

    dsn: str
    capabilities: Capabilities

    def query(
        self,
        sql: str,
        fmt: str = "JSONEachRow",
        params: Mapping[str, str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> QueryResult:
        """Run one statement and return its output in ``fmt``.

        ``params`` bind ``{name:Type}`` placeholders; ``settings`` are
        per-query engine settings. Raises :class:`BackendError`.
        """
        ...

    def command(self, sql: str, settings: Mapping[str, str | int] | None = None) -> None:
        """Run one statement that returns nothing (DDL, INSERT … SELECT)."""
        ...

    def insert(
        self,
        table: str,
        data: bytes,
        fmt: str = "JSONEachRow",
        columns: tuple[str, ...] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> int:
        """Insert ``data`` (bytes in ``fmt``) into ``table`` (``db.table``,
        validated identifiers). Returns the number of rows written.

        Success means the engine committed the block; it does *not* mean the
        rows are visible to a concurrent reader that started earlier."""
        ...

    def close(self) -> None:
        """Release the engine. Safe to call twice."""
        ...
