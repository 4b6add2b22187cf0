"""Who a request is, and what its token may do (SPEC §7.3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from birdhouse.catalog.models import Token, Workspace
from birdhouse.catalog.tokens import ADMIN_USER, USER


class AuthError(Exception):
    """Authentication failed. ``status`` is 403 (invalid) or 404 (the token
    belongs to another region, or to a workspace that no longer exists)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Principal:
    """An authenticated token. ``workspace`` is None for the user token."""

    token: Token
    workspace: Workspace | None
    # A JWT's own requests/s limit (``limits.rps``), if it has one.
    rps: float | None = None

    @property
    def is_jwt(self) -> bool:
        return self.token.origin == "JWT"

    def _types(self) -> set[str]:
        return {scope.type for scope in self.token.scopes}

    @property
    def is_admin(self) -> bool:
        return bool(self._types() & {"ADMIN", ADMIN_USER})

    @property
    def is_user(self) -> bool:
        return USER in self._types()

    def _has(self, scope_type: str, resource: str | None = None) -> bool:
        return any(s.type == scope_type and (resource is None or s.resource == resource) for s in self.token.scopes)

    def can_create(self) -> bool:
        return self.is_admin or self._has("DATASOURCES:CREATE")

    def can_append(self, datasource_id: str) -> bool:
        return self.can_create() or self._has("DATASOURCES:APPEND", datasource_id)

    def can_read(self, datasource_id: str) -> bool:
        return self.is_admin or self._has("WORKSPACE:READ_ALL") or self._has("DATASOURCES:READ", datasource_id)

    def can_drop(self, datasource_id: str) -> bool:
        return self.is_admin or self._has("DATASOURCES:DROP", datasource_id)

    def can_manage_tokens(self) -> bool:
        return self.is_admin or self._has("TOKENS")

    def sees(self, datasource_id: str) -> bool:
        """Listed by GET /v0/datasources: any scope on the data source."""
        return (
            self.is_admin
            or self._has("WORKSPACE:READ_ALL")
            or self._has("DATASOURCES:CREATE")
            or any(s.resource == datasource_id for s in self.token.scopes)
        )

    def row_filters(self, tables: Mapping[str, str]) -> dict[str, str]:
        """Table name → row filter, for the ``tables`` (name → data source id)
        this principal reads through a filter."""
        found = {name: self.read_filter(ds_id) for name, ds_id in tables.items() if ds_id}
        return {name: text for name, text in found.items() if text is not None}

    def read_filter(self, datasource_id: str) -> str | None:
        """The row filter of a ``DATASOURCES:READ:<ds>:<filter>`` grant, if any
        (only when no broader grant applies)."""
        if self.is_admin or self._has("WORKSPACE:READ_ALL"):
            return None
        for scope in self.token.scopes:
            if scope.type == "DATASOURCES:READ" and scope.resource == datasource_id:
                return scope.filter
        return None
