"""The catalog: workspaces, tokens and data sources, cached in memory.

Requests read the cache (no backend round trip to authenticate); writes go to
the backend first and then to the cache, under one lock, so a record the
cache shows is always durable. :meth:`Catalog.refresh` reloads from the
backend, which is how other nodes' writes arrive.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import threading
import time
from collections.abc import Iterable

from birdhouse.backends import Backend
from birdhouse.catalog.access import AuthError, Principal
from birdhouse.catalog.jwt import JwtInvalid, looks_like_jwt, unverified_claims, verify_jwt
from birdhouse.catalog.models import DataSource, Pipe, Token, Workspace, new_uuid
from birdhouse.catalog.store import CatalogStore, Record
from birdhouse.catalog.tokens import (
    ADMIN_USER,
    JWT_SCOPES,
    USER,
    Scope,
    TokenInvalid,
    decode_token,
    decode_unverified_host,
    mint_token,
)
from birdhouse.schema.names import InvalidName, validate_identifier


class CatalogError(Exception):
    """A catalog request that cannot be done. ``status`` maps to HTTP."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# At most this often a lookup miss (unknown token, missing data source) reloads the catalog.
MISS_REFRESH_INTERVAL_S = 0.1


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


# Digests of stored tokens only (keyed by the stored value, never by what a
# client presents): authentication compares one on every request.
_stored_digest = functools.lru_cache(maxsize=4096)(_digest)


class Catalog:
    def __init__(self, backend: Backend, secret: bytes, region: str, database: str = "birdhouse") -> None:
        self.backend = backend
        self.secret = secret
        self.region = region
        self.store = CatalogStore(backend, database)
        self.lock = threading.RLock()
        self.workspaces: dict[str, Workspace] = {}
        self.tokens: dict[str, Token] = {}
        self.datasources: dict[str, DataSource] = {}
        # (workspace id, name) → data source: every event request resolves its
        # ?name= here, so it must not scan all data sources.
        self._datasource_names: dict[tuple[str, str], DataSource] = {}
        self.pipes: dict[str, Pipe] = {}
        # sha256(token string) → token id: lookups by a digest leak nothing
        # about the stored strings; the final comparison is constant-time.
        self._by_digest: dict[bytes, str] = {}
        self._miss_refreshed: dict[str, float] = {}
        self._last_miss_refresh = -MISS_REFRESH_INTERVAL_S
        # Other nodes write this catalog too (a ClickHouse backend), so a miss may be news.
        self.shared = not backend.dsn.startswith("chdb://")

    # ------------------------------------------------------------ loading

    def open(self) -> None:
        self.store.ensure_schema()
        self.refresh()

    def refresh(self) -> None:
        """Reload everything from the backend: how other nodes' writes arrive.
        Holds the write lock while loading so a concurrent local write is
        never overwritten by an older snapshot."""
        with self.lock:
            self._refresh_locked()

    def refresh_for_unknown(self, token_id: str) -> bool:
        """Reload once for a well-signed token this node does not know:
        another node may have just minted it. Only holders of the signing
        secret can produce such ids, so keying the rate limit by token id
        bounds reloads (a revoked token reloads at most once a second)."""
        return self._refresh_once(token_id)

    def refresh_for_missing_datasource(self, workspace_id: str, name: str) -> bool:
        """Reload once (per name and second) before treating a data source as
        missing, when nodes share the catalog: another node may have just
        created it, and auto-creating it again would fail or duplicate."""
        if not self.shared:
            return False
        return self._refresh_once(f"ds\0{workspace_id}\0{name}")

    def _refresh_once(self, key: str) -> bool:
        now = time.monotonic()
        last = self._miss_refreshed.get(key)
        if last is not None and now - last < 1.0:
            return False
        # Also a floor across keys: random data source names (any valid token
        # can send them) or many revoked tokens must not turn into a full
        # catalog load each. The periodic refresh still brings news within
        # storage.catalog_refresh_s.
        if now - self._last_miss_refresh < MISS_REFRESH_INTERVAL_S:
            return False
        self._last_miss_refresh = now
        self._miss_refreshed[key] = now
        if len(self._miss_refreshed) > 10000:
            self._miss_refreshed.clear()
        self.refresh()
        return True

    def _refresh_locked(self) -> None:
        workspaces: dict[str, Workspace] = {}
        tokens: dict[str, Token] = {}
        datasources: dict[str, DataSource] = {}
        pipes: dict[str, Pipe] = {}
        for record in self.store.load():
            if isinstance(record, Workspace):
                workspaces[record.id] = record
            elif isinstance(record, Token):
                tokens[record.id] = record
            elif isinstance(record, Pipe):
                pipes[record.id] = record
            elif isinstance(record, DataSource):
                datasources[record.id] = record
        self.workspaces, self.tokens, self.pipes = workspaces, tokens, pipes
        self._set_datasources(datasources)
        self._by_digest = {_digest(t.token): t.id for t in tokens.values()}

    # Writes replace the cache dicts instead of mutating them (copy on write):
    # requests iterate them on the event loop while catalog writes run in
    # worker threads, and the catalog is small.

    def _put(self, record: Record) -> None:
        self.store.save(record)
        if isinstance(record, Workspace):
            self.workspaces = {**self.workspaces, record.id: record}
        elif isinstance(record, Token):
            old = self.tokens.get(record.id)
            digests = dict(self._by_digest)
            if old is not None:
                digests.pop(_digest(old.token), None)
            digests[_digest(record.token)] = record.id
            self.tokens = {**self.tokens, record.id: record}
            self._by_digest = digests
        elif isinstance(record, Pipe):
            self.pipes = {**self.pipes, record.id: record}
        elif isinstance(record, DataSource):
            self._set_datasources({**self.datasources, record.id: record})

    def _drop(self, record: Record) -> None:
        self.store.delete(record)
        if isinstance(record, Workspace):
            self.workspaces = {k: v for k, v in self.workspaces.items() if k != record.id}
        elif isinstance(record, Token):
            self.tokens = {k: v for k, v in self.tokens.items() if k != record.id}
            digest = _digest(record.token)
            self._by_digest = {k: v for k, v in self._by_digest.items() if k != digest}
        elif isinstance(record, Pipe):
            self.pipes = {k: v for k, v in self.pipes.items() if k != record.id}
        elif isinstance(record, DataSource):
            self._set_datasources({k: v for k, v in self.datasources.items() if k != record.id})

    def _set_datasources(self, datasources: dict[str, DataSource]) -> None:
        names: dict[tuple[str, str], DataSource] = {}
        for datasource in datasources.values():
            names.setdefault((datasource.workspace_id, datasource.name), datasource)
        # The index first: a reader that sees the new dict also finds its names.
        self._datasource_names = names
        self.datasources = datasources

    # --------------------------------------------------------- workspaces

    def workspace_by_name(self, name: str) -> Workspace | None:
        return next((w for w in self.workspaces.values() if w.name == name), None)

    def create_workspace(self, name: str, user_id: str, email: str) -> Workspace:
        """A workspace, its database and its default tokens (SPEC §7.4)."""
        try:
            validate_identifier(name)
        except InvalidName as exc:
            raise CatalogError(str(exc)) from None
        with self.lock:
            if self.workspace_by_name(name) is not None:
                raise CatalogError(f"There is already a workspace with name '{name}'", 409)
            workspace_id = new_uuid()
            workspace = Workspace(id=workspace_id, name=name, database="w_" + workspace_id.replace("-", ""))
            self.backend.command(f"CREATE DATABASE IF NOT EXISTS `{workspace.database}`")
            self._put(workspace)
            self.mint(workspace, "Workspace admin token", [Scope("ADMIN")])
            self.mint(workspace, f"admin {email}", [Scope(ADMIN_USER, user_id)], user_id=user_id)
            self.mint(workspace, "create datasource token", [Scope("DATASOURCES:CREATE")])
            return workspace

    def save_workspace(self, workspace: Workspace) -> None:
        with self.lock:
            self._put(workspace)

    def delete_workspace(self, workspace: Workspace) -> None:
        with self.lock:
            for token in self.workspace_tokens(workspace.id):
                self._drop(token)
            for datasource in self.workspace_datasources(workspace.id):
                self._drop(datasource)
            for pipe in self.workspace_pipes(workspace.id):
                self._drop(pipe)
            self._drop(workspace)
            self.backend.command(f"DROP DATABASE IF EXISTS `{workspace.database}`")

    # ------------------------------------------------------------- tokens

    def workspace_tokens(self, workspace_id: str) -> list[Token]:
        return sorted((t for t in self.tokens.values() if t.workspace_id == workspace_id), key=lambda t: t.created_at)

    def find_token(self, workspace_id: str, name_or_id: str) -> Token | None:
        for token in self.workspace_tokens(workspace_id):
            if token.name == name_or_id or token.id == name_or_id:
                return token
        return None

    def mint(
        self,
        workspace: Workspace | None,
        name: str,
        scopes: Iterable[Scope],
        description: str = "",
        user_id: str = "",
        pinned: str = "",
    ) -> Token:
        """Create a token. ``pinned`` is an exact token string to use instead
        of a minted one (Tinybird Local's ``TB_LOCAL_*_TOKEN`` parity)."""
        workspace_id = workspace.id if workspace else ""
        with self.lock:
            if self.find_token(workspace_id, name) is not None:
                raise CatalogError(f"Token with name '{name}' already exists")
            token_id = new_uuid()
            subject = workspace_id or user_id
            token = Token(
                id=token_id,
                workspace_id=workspace_id,
                name=name,
                token=pinned or mint_token(self.secret, subject, token_id, self.region),
                scopes=list(scopes),
                description=description,
                user_id=user_id,
            )
            self._put(token)
            return token

    def save_token(self, token: Token) -> None:
        with self.lock:
            self._put(token)

    def delete_token(self, token: Token) -> None:
        with self.lock:
            self._drop(token)

    def refresh_token(self, token: Token) -> Token:
        """A new id and string; the old string stops working at once."""
        with self.lock:
            self._drop(token)
            token_id = new_uuid()
            subject = token.workspace_id or token.user_id
            token.id = token_id
            token.token = mint_token(self.secret, subject, token_id, self.region)
            self._put(token)
            return token

    def user_token(self) -> Token | None:
        return next((t for t in self.tokens.values() if any(s.type == USER for s in t.scopes)), None)

    def authenticate(self, presented: str) -> Principal:
        """Resolve a token string. Forgeries, unknown and revoked tokens → 403;
        a token of another region or of a deleted workspace → 404."""
        presented_digest = _digest(presented)
        token_id = self._by_digest.get(presented_digest)
        if token_id is None and looks_like_jwt(presented):
            return self._authenticate_jwt(presented)
        if token_id is None:
            if presented.startswith("p."):
                host = decode_unverified_host(presented)
                if host is not None and host != self.region:
                    raise AuthError(
                        f"Token for region '{host}', but this server is region '{self.region}': "
                        "use the API host of the token's region",
                        404,
                    )
                try:
                    claims = decode_token(self.secret, presented)
                except TokenInvalid:
                    raise AuthError("Invalid token") from None
                token_id = claims.token_id
                if token_id not in self.tokens and self.refresh_for_unknown(token_id):
                    # Minted by another node since our last refresh.
                    return self.authenticate(presented)
                if (
                    claims.workspace_id
                    and self.tokens.get(token_id) is None
                    and (
                        claims.workspace_id not in self.workspaces
                        and not any(t.user_id == claims.workspace_id for t in self.tokens.values())
                    )
                ):
                    raise AuthError("Workspace not found", 404)
            else:
                raise AuthError("Invalid token")
        token = self.tokens.get(token_id)
        if token is None or not hmac.compare_digest(_stored_digest(token.token), presented_digest):
            raise AuthError("Invalid token")
        workspace = self.workspaces.get(token.workspace_id) if token.workspace_id else None
        if token.workspace_id and workspace is None:
            raise AuthError("Workspace not found", 404)
        return Principal(token=token, workspace=workspace)

    def _authenticate_jwt(self, presented: str) -> Principal:
        """A JWT signed with its workspace's admin token (SPEC §7.6). Its scopes
        name resources; they are resolved to ids like stored scopes."""
        try:
            claims = unverified_claims(presented)
            workspace = self.workspaces.get(str(claims.get("workspace_id", "")))
            admin = self.find_token(workspace.id, "Workspace admin token") if workspace else None
            if workspace is None or admin is None:
                raise JwtInvalid("unknown workspace")
            claims = verify_jwt(presented, admin.token)
        except JwtInvalid:
            raise AuthError("Invalid token") from None
        scopes: list[Scope] = []
        for raw in claims.get("scopes") or []:
            if not isinstance(raw, dict) or raw.get("type") not in JWT_SCOPES:
                raise AuthError("Invalid token")
            resource = str(raw.get("resource") or "")
            found = self.find_datasource(workspace.id, resource) or self.find_pipe(workspace.id, resource)
            scopes.append(Scope(str(raw["type"]), found.id if found else resource, raw.get("filter")))
        token = Token(
            id="jwt:" + hashlib.sha256(presented.encode()).hexdigest()[:32],
            workspace_id=workspace.id,
            name=str(claims.get("name", "")),
            token="",
            scopes=scopes,
            origin="JWT",
        )
        rps = (claims.get("limits") or {}).get("rps") if isinstance(claims.get("limits"), dict) else None
        return Principal(token=token, workspace=workspace, rps=float(rps) if isinstance(rps, int | float) else None)

    # -------------------------------------------------------- datasources

    def workspace_datasources(self, workspace_id: str) -> list[DataSource]:
        return sorted((d for d in self.datasources.values() if d.workspace_id == workspace_id), key=lambda d: d.name)

    def find_datasource(self, workspace_id: str, name_or_id: str) -> DataSource | None:
        found = self.datasources.get(name_or_id)
        if found is not None and found.workspace_id == workspace_id:
            return found
        return self._datasource_names.get((workspace_id, name_or_id))

    def save_datasource(self, datasource: DataSource) -> None:
        with self.lock:
            self._put(datasource)

    def forget_datasource(self, datasource: DataSource) -> None:
        """Remove the record and every scope that names it."""
        with self.lock:
            self._drop(datasource)
            for token in list(self.tokens.values()):
                kept = [s for s in token.scopes if s.resource != datasource.id]
                if len(kept) != len(token.scopes):
                    token.scopes = kept
                    self._put(token)

    # -------------------------------------------------------------- pipes

    def workspace_pipes(self, workspace_id: str) -> list[Pipe]:
        return sorted((p for p in self.pipes.values() if p.workspace_id == workspace_id), key=lambda p: p.name)

    def find_pipe(self, workspace_id: str, name_or_id: str) -> Pipe | None:
        return next(
            (p for p in self.workspace_pipes(workspace_id) if name_or_id in (p.name, p.id)),
            None,
        )

    def save_pipe(self, pipe: Pipe) -> None:
        with self.lock:
            self._put(pipe)

    def forget_pipe(self, pipe: Pipe) -> None:
        with self.lock:
            self._drop(pipe)
            for token in list(self.tokens.values()):
                kept = [s for s in token.scopes if s.resource != pipe.id]
                if len(kept) != len(token.scopes):
                    token.scopes = kept
                    self._put(token)
