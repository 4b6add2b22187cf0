"""/v0/sql and pipes: read-only SQL, scoped to what the token may read."""

from birdhouse.query.guard import FORMATS, GuardedQuery, SqlRefused, guard_query

__all__ = ["FORMATS", "GuardedQuery", "SqlRefused", "guard_query"]
