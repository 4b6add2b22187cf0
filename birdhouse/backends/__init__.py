"""Storage backends, chosen by DSN scheme (``chdb:///path``, ``clickhouse://host:8123/``)."""

from __future__ import annotations

from birdhouse.backends.base import Backend, BackendError, BackendUnavailable, Capabilities, QueryResult

__all__ = ["Backend", "BackendError", "BackendUnavailable", "Capabilities", "QueryResult", "open_backend"]


def open_backend(dsn: str) -> Backend:
    """Open the backend a DSN names.

    ``chdb:///abs/path`` or ``chdb://rel/path``: embedded chDB.
    ``clickhouse://[user[:password]@]host[:port]/?database=db&cluster=name``: a
    ClickHouse server over HTTP (port 8123 by default).
    """
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        raise ValueError(f"storage DSN {dsn!r} has no scheme; expected chdb:///path or clickhouse://host:8123/")
    if scheme == "chdb":
        from birdhouse.backends.chdb import ChdbBackend

        return ChdbBackend(rest)
    if scheme == "clickhouse":
        # Imported lazily: the embedded default should not pay for httpx.
        from birdhouse.backends.clickhouse import ClickhouseBackend

        return ClickhouseBackend(dsn)
    raise ValueError(f"unsupported storage scheme {scheme!r} in {dsn!r}; supported: chdb, clickhouse")
