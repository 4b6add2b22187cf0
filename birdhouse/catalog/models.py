"""The catalog's records. Each is stored as one msgspec-encoded JSON document
(see :mod:`birdhouse.catalog.store`), so adding a field needs no migration:
old documents decode with the field's default."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import msgspec

from birdhouse.catalog.tokens import Scope
from birdhouse.schema.columns import Column
from birdhouse.schema.engine import EngineSpec


def utc_now() -> str:
    """Timestamps as SPEC §0.1 wants them: UTC ``YYYY-MM-DD hh:mm:ss.ffffff``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_datasource_id() -> str:
    return "t_" + secrets.token_hex(16)


class Workspace(msgspec.Struct, kw_only=True):
    id: str
    name: str
    # The ClickHouse database holding this workspace's tables; fixed at creation.
    database: str
    created_at: str = msgspec.field(default_factory=utc_now)
    # Per-workspace overrides of limits.* (workspace_rps, workspace_burst,
    # datasource_rps, datasource_burst, workspace_mbps), set through the API.
    limits: dict[str, float] = msgspec.field(default_factory=dict)


class Token(msgspec.Struct, kw_only=True):
    id: str
    # Empty for the user token, which belongs to a user, not a workspace.
    workspace_id: str
    name: str
    token: str
    scopes: list[Scope] = msgspec.field(default_factory=list)
    description: str = ""
    origin: str = "C"
    # Set on the user token and ADMIN_USER tokens: the `u` claim of a user token.
    user_id: str = ""
    created_at: str = msgspec.field(default_factory=utc_now)


class DataSource(msgspec.Struct, kw_only=True):
    id: str
    workspace_id: str
    name: str
    columns: list[Column]
    engine: EngineSpec
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    indexes: list[str] = msgspec.field(default_factory=list)
    type: str = "ndjson"
    created_at: str = msgspec.field(default_factory=utc_now)
    updated_at: str = msgspec.field(default_factory=utc_now)

    @property
    def quarantine_name(self) -> str:
        return f"{self.name}_quarantine"


class PipeNode(msgspec.Struct, kw_only=True):
    name: str
    sql: str
    description: str = ""
    # "" (a plain node), "materialized" or "endpoint".
    type: str = ""
    # For a materialized node: the target data source id.
    datasource_id: str = ""


class Pipe(msgspec.Struct, kw_only=True):
    """A ``.pipe`` datafile: nodes of SQL; a materialized node is a ClickHouse
    MATERIALIZED VIEW writing into a target data source, an endpoint node is
    served at ``GET /v0/pipes/<name>.json``."""

    id: str
    workspace_id: str
    name: str
    nodes: list[PipeNode]
    description: str = ""
    # The pipe datafile text as deployed, for GET /v0/pipes/<name>.pipe.
    source: str = ""
    created_at: str = msgspec.field(default_factory=utc_now)
    updated_at: str = msgspec.field(default_factory=utc_now)


def new_pipe_id() -> str:
    return "t_" + secrets.token_hex(16)


class SharedSecret(msgspec.Struct, kw_only=True):
    """The token-signing secret when nodes share a ClickHouse catalog: every
    node must verify every other node's tokens, so it lives beside them."""

    id: str
    name: str
    value: str
