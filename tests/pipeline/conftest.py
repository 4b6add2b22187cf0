"""Helpers for pipeline tests: a backend that fails on demand."""

from __future__ import annotations

from collections.abc import Mapping

from birdhouse.backends import Backend, BackendUnavailable, QueryResult


class FlakyBackend:
    """Wraps a real backend; while ``down`` is set every insert fails as if
    the server were unreachable. Queries keep working (the catalog and
    /v0/sql read through the same engine)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.dsn = inner.dsn
        self.capabilities = inner.capabilities
        self.down = False
        self.failed_inserts = 0

    def query(
        self,
        sql: str,
        fmt: str = "JSONEachRow",
        params: Mapping[str, str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> QueryResult:
        return self.inner.query(sql, fmt, params, settings)

    def command(self, sql: str, settings: Mapping[str, str | int] | None = None) -> None:
        self.inner.command(sql, settings)

    def insert(
        self,
        table: str,
        data: bytes,
        fmt: str = "JSONEachRow",
        columns: tuple[str, ...] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> int:
        if self.down:
            self.failed_inserts += 1
            raise BackendUnavailable("injected: backend down")
        return self.inner.insert(table, data, fmt, columns, settings)

    def close(self) -> None:
        self.inner.close()
