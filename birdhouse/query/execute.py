"""Running a guarded read-only query for a principal (``/v0/sql``).

The guard (:mod:`birdhouse.query.guard`) decides *what* may run; this module
decides *how*: engine-side read-only mode and limits that a query cannot lift
(its SETTINGS clauses are refused by the guard), and the response format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from birdhouse.backends import Backend, BackendError
from birdhouse.catalog.access import Principal
from birdhouse.catalog.catalog import Catalog
from birdhouse.catalog.opslog import SERVICE_TABLES, create_service_table
from birdhouse.config import SqlSettings
from birdhouse.query.guard import SqlRefused, guard_query

# Engine error codes that mean "the query took too long" (→ 408).
TIMEOUT_CODES = frozenset({159, 160})

# Settings a caller may pass as URL parameters (SPEC §10.2); nothing else.
PASSTHROUGH_SETTINGS = (
    "output_format_json_quote_64bit_integers",
    "output_format_json_quote_denormals",
    "output_format_parquet_string_as_string",
)

CONTENT_TYPES = {
    "JSON": "application/json",
    "JSONCompact": "application/json",
    "JSONStrings": "application/json",
    "JSONEachRow": "application/x-ndjson",
    "JSONCompactEachRow": "application/x-ndjson",
    "CSV": "text/csv",
    "CSVWithNames": "text/csv",
    "Parquet": "application/octet-stream",
    "Arrow": "application/octet-stream",
}


# The engine echoes the statement it ran: our enforced settings and the
# workspace's internal database name are ours, not the user's query.
_ENFORCED_SETTINGS = re.compile(r" SETTINGS readonly = 1(?:, [a-z_]+ = (?:'[^']*'|[^,.)\s]+))*")


def user_message(message: str, database: str) -> str:
    """An engine error as the user wrote the query: no internal names."""
    message = _ENFORCED_SETTINGS.sub("", message)
    return message.replace(f"`{database}`.", "").replace(f"{database}.", "")


def read_only_settings(limits: SqlSettings, passthrough: Mapping[str, str] | None) -> dict[str, str | int]:
    """Engine settings for a user's read query: read-only, bounded in time and
    size; the query itself cannot change them (the guard refuses SETTINGS)."""
    settings: dict[str, str | int] = {
        "readonly": 1,
        "max_execution_time": limits.max_execution_time_s,
        "max_result_bytes": limits.max_result_bytes,
        "result_overflow_mode": "throw",
    }
    for key in PASSTHROUGH_SETTINGS:
        if passthrough and key in passthrough:
            settings[key] = passthrough[key]
    return settings


def content_type(fmt: str) -> str:
    # tb CLI compares text/plain for equality: no charset parameter (SPEC §10.2).
    return CONTENT_TYPES.get(fmt, "text/plain")


@dataclass(frozen=True)
class QueryOutput:
    body: bytes
    content_type: str


class QueryFailed(Exception):
    def __init__(self, message: str, status: int, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def run_sql(
    backend: Backend,
    catalog: Catalog,
    principal: Principal,
    sql: str,
    limits: SqlSettings,
    passthrough: Mapping[str, str] | None = None,
) -> QueryOutput:
    workspace = principal.workspace
    assert workspace is not None
    if not backend.capabilities.explain_ast:
        # The guard must see the engine's own parse of the query; parsing with
        # a different engine version could let a parser difference through.
        raise QueryFailed(
            f"/v0/sql needs EXPLAIN AST, which ClickHouse {backend.capabilities.version} lacks; "
            "use ClickHouse 20.6 or newer",
            501,
        )
    if len(sql.encode()) > limits.max_query_bytes:
        raise QueryFailed(f"The query is longer than {limits.max_query_bytes} bytes", 400)
    tables: dict[str, str] = {}
    for datasource in catalog.workspace_datasources(workspace.id):
        tables[datasource.name] = datasource.id
        tables[datasource.quarantine_name] = datasource.id
    for service in SERVICE_TABLES:
        tables[service] = ""  # service data sources (tinybird.*): ADMIN tokens only

    def readable(name: str) -> bool:
        ds_id = tables.get(name)
        if ds_id == "":
            return principal.is_admin
        return ds_id is not None and principal.can_read(ds_id)

    def explain(text: str) -> str:
        return backend.query("EXPLAIN AST " + text, "TSVRaw").body.decode()

    try:
        guarded = guard_query(
            sql,
            database=workspace.database,
            known_tables=tables.keys(),
            readable=readable,
            explain_ast=explain,
            filters=principal.row_filters(tables),
        )
    except SqlRefused as exc:
        raise QueryFailed(exc.message, exc.status) from None
    for service in SERVICE_TABLES & guarded.tables:
        try:  # a workspace that never logged anything has no table yet: read it empty
            create_service_table(backend, workspace, service)
        except BackendError as exc:
            raise QueryFailed(exc.message, 400, exc.code) from None
    settings = read_only_settings(limits, passthrough)
    try:
        result = backend.query(guarded.sql, guarded.format, settings=settings)
    except BackendError as exc:
        status = 408 if exc.code in TIMEOUT_CODES else 400
        raise QueryFailed(user_message(exc.message, workspace.database), status, exc.code) from None
    return QueryOutput(result.body, content_type(guarded.format))
