"""Storage backends, chosen by DSN scheme (``chdb:///path``)."""

from __future__ import annotations

from birdhouse.backends.base import Backend, BackendError, BackendUnavailable, Capabilities, QueryResult

__all__ = ["Backend", "BackendError", "BackendUnavailable", "Capabilities", "QueryResult", "open_backend"]


def open_backend(dsn: str) -> Backend:
    """Open the backend a DSN names. ``chdb:///abs/path`` or ``chdb://rel/path``."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        raise ValueError(f"storage DSN {dsn!r} has no scheme; expected chdb:///path")
    if scheme == "chdb":
        from birdhouse.backends.chdb import ChdbBackend

        return ChdbBackend(rest)
    raise ValueError(f"unsupported storage scheme {scheme!r} in {dsn!r}; supported: chdb")
