"""The guard's one exception, shared by its modules."""

from __future__ import annotations

__all__ = ["SqlRefused"]


class SqlRefused(Exception):
    """The query may not run. ``status`` is 400 (not allowed / invalid) or 403 (no read scope).

    ``message`` says what is not allowed and why; it is safe to show the client.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
