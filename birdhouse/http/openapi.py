"""An OpenAPI 3.1 description of birdhouse's public HTTP API, served at ``GET /v0/openapi.json``.

It describes what the server *does*, not an ideal: every status code a route can
answer for a client's request, the exact response shapes (closed objects where the
shape is birdhouse's own, open ones where the storage engine owns it, like query
results), and the parameters each route reads. tests/fuzz/test_openapi.py runs
schemathesis against the app with this document, so drift between the two fails
the test suite.

Conventions that hold for every operation:

* Tokens go in ``Authorization: Bearer <token>`` or the ``token`` query parameter;
  the query parameter wins (SPEC §1.3). Both are security schemes here, so a
  generator never invents token values for them.
* Unknown query parameters are ignored everywhere; for repeated ones the first wins.
* Errors are JSON ``{"error": "<text>"}`` except on ``/v0/events``, whose errors are
  ``text/plain; charset=utf-8`` lines (SPEC §2.2, D5).
* A 500 is always a bug (its body never carries a traceback); it is documented only
  where SPEC names it (E23 on ``/v0/events``).
* Paths are matched by Starlette: a path parameter never contains ``/``, and a
  request to an undocumented path or method gets Starlette's plain-text 404/405.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["OPENAPI", "openapi_json", "routes"]

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _closed(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """An object with exactly these keys (``required`` defaults to all of them)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


STRING: Final[Schema] = {"type": "string"}
INT: Final[Schema] = {"type": "integer"}
COUNT: Final[Schema] = {"type": "integer", "minimum": 0}
BOOL: Final[Schema] = {"type": "boolean"}
NUMBER: Final[Schema] = {"type": "number"}
NULL: Final[Schema] = {"type": "null"}
NULLABLE_STRING: Final[Schema] = {"type": ["string", "null"]}
# A path segment as Starlette routes it: no "/", and not "." or ".." (clients
# normalise those away before the request leaves them).
SEGMENT: Final[Schema] = {"type": "string", "minLength": 1, "pattern": r"^(?!\.\.?$)[^/]+$"}
# Integer header values (tinybird-python-sdk int()s them, the OTel exporter Atoi()s them).
INT_HEADER: Final[Schema] = {"type": "string", "pattern": r"^[0-9]+$"}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": _closed({"error": {"type": "string", "minLength": 1}}),
    "EventsAccepted": _closed(
        {
            "successful_rows": COUNT,
            "quarantined_rows": COUNT,
            "quarantine": {
                "description": "Only with `quarantine_details=true`: the first 100 quarantined lines.",
                "type": "array",
                "maxItems": 100,
                "items": _closed(
                    {
                        "line": {"type": "integer", "minimum": 1},
                        "columns": {"type": "array", "items": STRING},
                        "errors": {"type": "array", "items": STRING},
                    }
                ),
            },
        },
        required=["successful_rows", "quarantined_rows"],
    ),
    "Scope": _closed(
        {
            "type": {"type": "string", "examples": ["ADMIN", "DATASOURCES:APPEND"]},
            "resource": {"type": "string", "description": "Data source name (id if it no longer exists)."},
            "filter": {"type": "string", "description": "SQL row filter of a READ scope."},
        },
        required=["type"],
    ),
    "Token": _closed(
        {
            "id": {"type": "string", "format": "uuid"},
            "name": STRING,
            "description": STRING,
            "scopes": {"type": "array", "items": _ref("Scope")},
            "token": {"type": "string", "description": "The token string; `p.` + payload + `.` + HMAC."},
            "origin": _closed({"type": STRING}),
            "host": {"type": "string", "description": "`server.region`"},
        }
    ),
    "TokenList": _closed({"tokens": {"type": "array", "items": _ref("Token")}}),
    "Column": _closed(
        {
            "name": STRING,
            "normalized_name": STRING,
            "type": {"type": "string", "description": "ClickHouse type, canonical text"},
            "nullable": BOOL,
            "default_value": {**NULLABLE_STRING, "description": "`DEFAULT expr`, `MATERIALIZED expr` …"},
            "jsonpath": {"type": "string", "description": "Empty when the column has no `json:` path."},
            "codec": NULLABLE_STRING,
            "auto": BOOL,
        }
    ),
    "DataSource": _closed(
        {
            "id": {"type": "string", "pattern": "^t_[0-9a-f]{32}$"},
            "name": STRING,
            "type": {"type": "string", "enum": ["ndjson", "csv", "parquet"]},
            "created_at": {"type": "string", "description": "UTC `YYYY-MM-DD hh:mm:ss.ffffff`"},
            "updated_at": STRING,
            "description": STRING,
            "engine": _closed(
                {
                    "engine": STRING,
                    "engine_full": STRING,
                    "sorting_key": STRING,
                    "partition_key": STRING,
                    "ttl": STRING,
                }
            ),
            "engine_sorting_key": STRING,
            "engine_partition_key": STRING,
            "schema": _closed({"columns": {"type": "array", "items": _ref("Column")}, "sql_schema": STRING}),
            "columns": {"type": "array", "items": _ref("Column")},
            "statistics": _closed({"bytes": COUNT, "row_count": COUNT}),
            "tags": {"type": "array", "items": STRING},
            "used_by": {"type": "array", "items": _closed({"id": STRING, "name": STRING})},
            "headers": {"type": "object"},
            "indexes": {"type": "array", "items": _closed({"expr": STRING})},
            "shared_with": {"type": "array"},
            "version": INT,
            "replicated": BOOL,
            "cluster": NULLABLE_STRING,
            "project": NULL,
            "new_columns_detected": {"type": "object"},
            "errors_discarded_at": NULLABLE_STRING,
        }
    ),
    "DataSourceList": _closed({"datasources": {"type": "array", "items": _ref("DataSource")}}),
    "DataSourceCreated": _closed({"datasource": _ref("DataSource")}),
    "QueryResult": {
        "description": "The engine's JSON output format (`JSON`, `JSONCompact`, `JSONStrings`): "
        "`data` rows are objects, or arrays for `JSONCompact`.",
        "type": "object",
        "properties": {
            "meta": {"type": "array", "items": {"type": "object", "required": ["name", "type"]}},
            "data": {"type": "array"},
            "rows": COUNT,
            "rows_before_limit_at_least": COUNT,
            "statistics": {
                "type": "object",
                "properties": {"elapsed": NUMBER, "rows_read": COUNT, "bytes_read": COUNT},
            },
        },
        "required": ["meta", "data", "rows"],
    },
    "Analysis": _closed(
        {
            "analysis": _closed(
                {
                    "columns": {
                        "type": "array",
                        "items": _closed(
                            {
                                "path": STRING,
                                "recommended_type": STRING,
                                "present_pct": {"type": "number", "minimum": 0, "maximum": 1},
                                "name": STRING,
                            }
                        ),
                    },
                    "schema": {"type": "string", "description": "A `schema=` string with json paths (SPEC §4.1)"},
                }
            ),
            "preview": _closed(
                {
                    "meta": {"type": "array", "items": _closed({"name": STRING, "type": STRING})},
                    "data": {"type": "array", "items": {"type": "object"}},
                }
            ),
        }
    ),
    "Workspace": _closed({"id": STRING, "name": STRING, "token": STRING}),
    "WorkspaceList": _closed(
        {
            "organization_id": {"type": "string", "format": "uuid"},
            "workspaces": {"type": "array", "items": _ref("Workspace")},
        }
    ),
    "WorkspaceDeleted": _closed({"id": STRING, "name": STRING}),
    "WorkspaceLimits": _closed(
        {
            "id": STRING,
            "name": STRING,
            "limits": _closed(
                {
                    "workspace_rps": NUMBER,
                    "workspace_burst": NUMBER,
                    "datasource_rps": NUMBER,
                    "datasource_burst": NUMBER,
                    "workspace_mbps": NUMBER,
                }
            ),
            "overrides": {"type": "object", "additionalProperties": NUMBER},
        }
    ),
    "LocalTokens": _closed({"user_token": STRING, "admin_token": STRING, "workspace_admin_token": STRING}),
    "Regions": _closed(
        {"regions": {"type": "array", "items": _closed({"name": STRING, "host": STRING, "api_host": STRING})}}
    ),
    "Health": _closed(
        {"status": {"type": "string", "enum": ["ok", "error", "replaying"]}, "error": STRING}, required=["status"]
    ),
}

RATE_HEADERS: Final[dict[str, Any]] = {
    name: {"description": description, "schema": INT_HEADER}
    for name, description in (
        ("X-RateLimit-Limit", "Bucket capacity. All three X-RateLimit headers or none (none when unlimited)."),
        ("X-RateLimit-Remaining", "Whole tokens left after this request; 0 on every 429."),
        ("X-RateLimit-Reset", "Seconds until the bucket is full again (relative, not an epoch)."),
    )
}
RETRY_AFTER: Final[dict[str, Any]] = {
    "Retry-After": {"description": "Integer seconds >= 1, never an HTTP-date.", "required": True, "schema": INT_HEADER}
}
CORS_ORIGIN: Final[dict[str, Any]] = {
    "Access-Control-Allow-Origin": {
        "description": "`*`, or the request's Origin when `events.cors_allow_origins` lists it.",
        "schema": STRING,
    }
}


def _json(description: str, schema: Schema, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(description, _ref("Error"), headers)


def _text(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"text/plain": {"schema": {"type": "string", "pattern": "\n$"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _auth_errors() -> dict[str, Any]:
    return {
        "403": _error("No token, an unknown, revoked or forged token, or one without the needed scope."),
        "404": _error("The token's workspace no longer exists, the token belongs to another region, or (for a "
                      "named resource) it does not exist or this token cannot see it."),
    }  # fmt: skip


SECURED: Final[list[dict[str, list[str]]]] = [{"bearer": []}, {"tokenQuery": []}]

_FORM_SCHEMA_NOTE = (
    "Parameters may also come from the query string (which wins), an urlencoded or multipart form, or a JSON "
    "object body (list values for repeatable keys)."
)


def _form_body(properties: dict[str, Schema], required: list[str] | None = None) -> dict[str, Any]:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {
        "required": False,
        "description": _FORM_SCHEMA_NOTE,
        "content": {
            "application/x-www-form-urlencoded": {"schema": schema},
            "application/json": {"schema": schema},
        },
    }


def _query(name: str, schema: Schema, description: str = "", required: bool = False) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": SEGMENT, "description": description}


# ----------------------------------------------------------------- /v0/events

SUCCESS_HEADERS: Final[dict[str, Any]] = {**RATE_HEADERS, **CORS_ORIGIN}

_EVENTS_ERRORS: Final[dict[str, str]] = {
    "400": "E6 missing `name`; E7 not a JSON data source; E8 a quarantine table; E9/E10/E11 auto-create "
    "refused; E12 unsupported column type; E17 a corrupt gzip/zstd/deflate body.",
    "403": "E1 no, malformed or invalid token, or no append scope; E3 may not auto-create.",
    "404": "E4 the token's workspace is gone or the token is of another region; E5 (`compat.mode=forward`) no "
    "such data source.",
    "408": "The body did not arrive within `server.body_read_timeout_s`.",
    "409": "E13 auto-create: the name belongs to another kind of resource.",
    "413": "E14 wire body over `events.max_request_bytes` (checked on Content-Length before reading); E15 "
    "decompressed body over `events.max_decompressed_bytes` (checked while inflating).",
    "415": "E16 unsupported `Content-Encoding`.",
    "500": "E23 an internal error before acceptance: a bug, nothing was stored.",
    "501": "E18 unsupported `format`.",
}

EVENTS_POST: Final[dict[str, Any]] = {
    "operationId": "events_ingest",
    "tags": ["events"],
    "summary": "Ingest NDJSON events (SPEC §1–2)",
    "description": "Rows are parsed, converted and appended to the write-ahead log; 202 is sent once they are "
    "fsync'd. Rows that do not fit the schema go to `<name>_quarantine` and are counted, never an error. "
    "Nothing is stored by a request answered 4xx or 5xx. Errors are `text/plain; charset=utf-8`, one line "
    "ending in `\\n`.",
    "security": SECURED,
    "parameters": [
        _query("name", {"type": "string"}, "Data source name or id (`t_<32 hex>`); whitespace stripped.", True),
        _query("wait", {"type": "string"}, "`true` (any case): answer 200 after the rows are committed."),
        _query("format", {"type": "string", "enum": ["ndjson", "json"]}, "Anything else is a 501 (E18)."),
        _query("quarantine_details", {"type": "string"}, "`true`: add `quarantine` to the success body."),
        _query("from", {"type": "string"}, "Sent by SDKs; ignored."),
        _query("mode", {"type": "string"}, "Sent by SDKs (`append`); ignored."),
        {
            "name": "Content-Encoding",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["identity", "gzip", "x-gzip", "zstd", "deflate"]},
            "description": "Anything else is a 415. gzip and zstd bodies are also recognised by their magic bytes.",
        },
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Requests with the same key within `dedup.window_s` are stored once.",
        },
    ],
    "requestBody": {
        "required": False,
        "description": "NDJSON: one JSON object per line (`\\n`, optional final newline, CRLF fine). The "
        "Content-Type is ignored.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {
        "200": _json("`wait=true` and the rows are committed.", _ref("EventsAccepted"), SUCCESS_HEADERS),
        "202": _json("Accepted: every row is durable in the write-ahead log.", _ref("EventsAccepted"), SUCCESS_HEADERS),
        **{status: _text(text, CORS_ORIGIN) for status, text in _EVENTS_ERRORS.items()},
        "429": _text("E19 rate limited.", {**RATE_HEADERS, **RETRY_AFTER, **CORS_ORIGIN}),
        "503": _text("E20 nothing ingested, retry: slot wait timed out, in-flight cap, WAL full or unwritable, "
                     "storage down past its deadline, auto-create lock timeout, or shutting down.",
                     {**RETRY_AFTER, **CORS_ORIGIN}),
    },
}  # fmt: skip

EVENTS_OPTIONS: Final[dict[str, Any]] = {
    "operationId": "events_preflight",
    "tags": ["events"],
    "summary": "CORS preflight",
    "parameters": [
        {"name": "Origin", "in": "header", "required": False, "schema": STRING},
        {"name": "Access-Control-Request-Method", "in": "header", "required": False, "schema": STRING},
        {"name": "Access-Control-Request-Headers", "in": "header", "required": False, "schema": STRING},
    ],
    "responses": {
        "200": {
            "description": "Empty body; CORS headers when the origin is allowed.",
            "headers": {
                **CORS_ORIGIN,
                "Access-Control-Allow-Methods": {"schema": {"type": "string", "const": "POST"}},
                "Access-Control-Max-Age": {"schema": {"type": "string", "const": "600"}},
            },
        }
    },
}

# ---------------------------------------------------------------- /v0/sql

_SQL_RESPONSES: Final[dict[str, Any]] = {
    "200": {
        "description": "The result in the query's FORMAT (JSON when it names none).",
        "content": {
            "application/json": {"schema": _ref("QueryResult")},
            "application/x-ndjson": {"schema": STRING},
            "text/csv": {"schema": STRING},
            "text/plain": {"schema": STRING},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "400": _error("Not a single read-only SELECT/DESCRIBE over this workspace's data sources, a query over "
                  "`sql.max_query_bytes`, or an engine error (with `X-DB-Exception-Code`).",
                  {"X-DB-Exception-Code": {"schema": INT_HEADER}}),
    "403": _error("Invalid token, a user token, or no read scope on a table the query reads."),
    "404": _auth_errors()["404"],
    "408": _error("The query ran past `sql.max_execution_time_s`."),
    "413": _error("The POST body is over `sql.max_query_bytes`."),
    "501": _error("The storage engine cannot verify queries (no EXPLAIN AST)."),
}  # fmt: skip

_SQL_PARAMS: Final[list[dict[str, Any]]] = [
    _query("output_format_json_quote_64bit_integers", {"type": "string", "enum": ["0", "1"]}),
    _query("output_format_json_quote_denormals", {"type": "string", "enum": ["0", "1"]}),
    _query("output_format_parquet_string_as_string", {"type": "string", "enum": ["0", "1"]}),
]

_SQL_EXAMPLES: Final[list[str]] = ["SELECT 1", "SELECT number FROM numbers(3) FORMAT CSV"]

SQL_GET: Final[dict[str, Any]] = {
    "operationId": "sql_get",
    "tags": ["query"],
    "summary": "Run a read-only query (SPEC §10.2)",
    "security": SECURED,
    "parameters": [
        _query("q", {"type": "string", "examples": _SQL_EXAMPLES}, "The SQL; without it the answer is 400.", True),
        *_SQL_PARAMS,
    ],
    "responses": _SQL_RESPONSES,
}

SQL_POST: Final[dict[str, Any]] = {
    "operationId": "sql_post",
    "tags": ["query"],
    "summary": "Run a read-only query sent in the body",
    "description": "`q` from the query string if present; else a form body's `q`; else the raw body, whatever "
    "its Content-Type.",
    "security": SECURED,
    "parameters": [_query("q", {"type": "string", "examples": _SQL_EXAMPLES}), *_SQL_PARAMS],
    "requestBody": {
        "required": False,
        "content": {
            "text/plain": {"schema": {"type": "string", "examples": _SQL_EXAMPLES}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"q": STRING}}},
        },
    },
    "responses": _SQL_RESPONSES,
}

# ---------------------------------------------------------------- datasources

_DS_NAME = _path("name", "Data source name or id; `<name>.datasource` (GET) returns the datafile text.")
_DS_FIELDS: Final[dict[str, Schema]] = {
    "name": {"type": "string", "examples": ["events"]},
    "schema": {"type": "string", "examples": ["timestamp DateTime `json:$.timestamp`, value Int64 `json:$.value`"]},
    "mode": {"type": "string", "examples": ["create"], "description": "Only `create` is supported here."},
    "description": STRING,
    "tags": {"type": "string", "description": "Comma-separated"},
    "engine": STRING,
    **{
        key: STRING
        for key in (
            "engine_sorting_key", "engine_partition_key", "engine_primary_key", "engine_ttl", "engine_ver",
            "engine_sign", "engine_version", "engine_settings",
        )
    },
}  # fmt: skip

DATASOURCES_LIST: Final[dict[str, Any]] = {
    "operationId": "datasources_list",
    "tags": ["datasources"],
    "summary": "List the data sources this token has any scope on (never 403 for a valid workspace token)",
    "security": SECURED,
    "parameters": [_query("attrs", STRING, "Accepted and ignored.")],
    "responses": {
        "200": _json("The data sources.", _ref("DataSourceList")),
        **_auth_errors(),
    },
}

DATASOURCES_CREATE: Final[dict[str, Any]] = {
    "operationId": "datasources_create",
    "tags": ["datasources"],
    "summary": "Create an empty data source from a schema (SPEC §10.1)",
    "security": SECURED,
    "requestBody": _form_body(_DS_FIELDS),
    "responses": {
        "200": _json("Created.", _ref("DataSourceCreated")),
        "400": _error("Missing or invalid name, schema or engine; a name clash; a limit reached; an unsupported "
                      "mode; an invalid JSON body."),
        **_auth_errors(),
        "413": _error("A JSON body over 1 MiB."),
    },
}  # fmt: skip

DATASOURCE_GET: Final[dict[str, Any]] = {
    "operationId": "datasources_get",
    "tags": ["datasources"],
    "summary": "Describe a data source, or its `.datasource` file",
    "security": SECURED,
    "parameters": [_DS_NAME],
    "responses": {
        "200": {
            "description": "The data source (JSON), or the datafile text for `<name>.datasource`.",
            "content": {"application/json": {"schema": _ref("DataSource")}, "text/plain": {"schema": STRING}},
        },
        **_auth_errors(),
    },
}

DATASOURCE_UPDATE: Final[dict[str, Any]] = {
    "operationId": "datasources_update",
    "tags": ["datasources"],
    "summary": "Change a data source's description or tags",
    "security": SECURED,
    "parameters": [_DS_NAME],
    "requestBody": _form_body({"description": STRING, "tags": STRING, "name": STRING}),
    "responses": {
        "200": _json("The updated data source.", _ref("DataSource")),
        "400": _error("A rename, or an invalid JSON body."),
        **_auth_errors(),
        "413": _error("A JSON body over 1 MiB."),
    },
}

DATASOURCE_DELETE: Final[dict[str, Any]] = {
    "operationId": "datasources_delete",
    "tags": ["datasources"],
    "summary": "Drop a data source and its quarantine table",
    "security": SECURED,
    "parameters": [_DS_NAME],
    "responses": {"204": {"description": "Dropped."}, **_auth_errors()},
}

DATASOURCE_TRUNCATE: Final[dict[str, Any]] = {
    "operationId": "datasources_truncate",
    "tags": ["datasources"],
    "summary": "Delete every row of a data source (or of `<name>_quarantine`)",
    "security": SECURED,
    "parameters": [_DS_NAME],
    "responses": {"200": _json("Truncated.", _closed({})), **_auth_errors()},
}

# --------------------------------------------------------------------- tokens

_TOKEN = _path("token", "Token name or id")
_TOKEN_FIELDS: Final[dict[str, Schema]] = {
    "name": {"type": "string", "examples": ["fuzz reader"]},
    "description": STRING,
    "scope": {
        "description": "Repeatable: `ADMIN`, `TOKENS`, `DATASOURCES:CREATE`, `DATASOURCES:APPEND:<ds>`, "
        "`DATASOURCES:READ:<ds>[:<filter>]`, `DATASOURCES:DROP:<ds>`, `WORKSPACE:READ_ALL` …",
        "oneOf": [STRING, {"type": "array", "items": STRING}],
        "examples": ["DATASOURCES:CREATE"],
    },
}
_CREATE_OR_UPDATE_400: Final[str] = (
    "Missing or too long name (1–255 characters), an invalid scope, a scope naming an unknown data source, a "
    "duplicate name, `expiration_time` (JWTs are not supported yet), or an invalid JSON body."
)

TOKENS_LIST: Final[dict[str, Any]] = {
    "operationId": "tokens_list",
    "tags": ["tokens"],
    "summary": "List the workspace's tokens (TOKENS or ADMIN scope)",
    "security": SECURED,
    "responses": {"200": _json("The tokens.", _ref("TokenList")), **_auth_errors()},
}

TOKENS_CREATE: Final[dict[str, Any]] = {
    "operationId": "tokens_create",
    "tags": ["tokens"],
    "summary": "Create a static token (SPEC §7.5)",
    "security": SECURED,
    "parameters": [_query("expiration_time", STRING, "JWT creation: not supported yet (400).")],
    "requestBody": _form_body(_TOKEN_FIELDS),
    "responses": {
        "200": _json("The token.", _ref("Token")),
        "400": _error(_CREATE_OR_UPDATE_400),
        **_auth_errors(),
        "413": _error("A JSON body over 1 MiB."),
    },
}

TOKEN_GET: Final[dict[str, Any]] = {
    "operationId": "tokens_get",
    "tags": ["tokens"],
    "security": SECURED,
    "parameters": [_TOKEN],
    "responses": {"200": _json("The token.", _ref("Token")), **_auth_errors()},
}

TOKEN_UPDATE: Final[dict[str, Any]] = {
    "operationId": "tokens_update",
    "tags": ["tokens"],
    "summary": "Replace scopes (when any `scope` is given), rename, or change the description",
    "security": SECURED,
    "parameters": [_TOKEN],
    "requestBody": _form_body(_TOKEN_FIELDS),
    "responses": {
        "200": _json("The token.", _ref("Token")),
        "400": _error(_CREATE_OR_UPDATE_400),
        **_auth_errors(),
        "413": _error("A JSON body over 1 MiB."),
    },
}

TOKEN_DELETE: Final[dict[str, Any]] = {
    "operationId": "tokens_delete",
    "tags": ["tokens"],
    "security": SECURED,
    "parameters": [_TOKEN],
    "responses": {"204": {"description": "Deleted; the string stops working at once on this node."}, **_auth_errors()},
}

TOKEN_REFRESH: Final[dict[str, Any]] = {
    "operationId": "tokens_refresh",
    "tags": ["tokens"],
    "summary": "New id and string; the old string stops working at once on this node",
    "security": SECURED,
    "parameters": [_TOKEN],
    "responses": {"200": _json("The refreshed token.", _ref("Token")), **_auth_errors()},
}

# -------------------------------------------------------------------- analyze

ANALYZE: Final[dict[str, Any]] = {
    "operationId": "analyze",
    "tags": ["datasources"],
    "summary": "Infer a schema from an NDJSON sample (SPEC §9.3); creates nothing",
    "security": SECURED,
    "parameters": [
        _query("url", STRING, "Remote analysis is disabled: any value is a 400."),
        {
            "name": "Content-Encoding",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["identity", "gzip", "x-gzip", "zstd", "deflate"]},
        },
    ],
    "requestBody": {
        "required": False,
        "description": "The raw sample (cut at `inference.sample_max_bytes`), or a form whose `ndjson` or `file` "
        "field holds it.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string", "examples": ['{"a": 1, "b": "x"}\n']}},
            "text/plain": {"schema": STRING},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"ndjson": {"type": "string", "format": "binary"}}}
            },
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"ndjson": STRING}}},
        },
    },
    "responses": {
        "200": _json("The inferred schema and a preview.", _ref("Analysis")),
        "400": _error("No column could be inferred, a `url` or `csv` field, or a corrupt compressed body."),
        **_auth_errors(),
        "413": _error("A compressed or form sample over the sample cap."),
        "415": _error("Unsupported Content-Encoding."),
    },
}

# --------------------------------------------------------------- local / admin

_WORKSPACE_ID = _path("workspace_id", "Workspace id or name")
_USER_ONLY_403 = "Not the user token (or, for listing, neither the user token nor an admin token)."

WORKSPACES_LIST: Final[dict[str, Any]] = {
    "operationId": "workspaces_list",
    "tags": ["workspaces"],
    "summary": "Workspaces: all of them for the user token, its own for an admin token",
    "security": SECURED,
    "parameters": [_query("with_organization", STRING, "Accepted and ignored.")],
    "responses": {
        "200": _json("The workspaces, each with its admin token.", _ref("WorkspaceList")),
        "403": _error(_USER_ONLY_403),
        "404": _auth_errors()["404"],
    },
}

WORKSPACES_CREATE: Final[dict[str, Any]] = {
    "operationId": "workspaces_create",
    "tags": ["workspaces"],
    "summary": "Create a workspace (user token)",
    "security": SECURED,
    "parameters": [
        _query("name", {"type": "string", "examples": ["Tinybird_Local_Build_fuzz"]}, "Or a form field `name`."),
        _query("assign_to_organization_id", STRING, "Accepted and ignored."),
    ],
    "requestBody": {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"name": STRING}}}
        },
    },
    "responses": {
        "200": _json("The workspace and its admin token.", _ref("Workspace")),
        "400": _error("Missing or invalid name (`[A-Za-z_][A-Za-z0-9_]*`, at most 255 characters)."),
        "403": _error(_USER_ONLY_403),
        "404": _auth_errors()["404"],
        "409": _error("A workspace with that name exists."),
    },
}

WORKSPACE_DELETE: Final[dict[str, Any]] = {
    "operationId": "workspaces_delete",
    "tags": ["workspaces"],
    "summary": "Delete a workspace, its tokens and its data (user token)",
    "security": SECURED,
    "parameters": [_WORKSPACE_ID, _query("hard_delete_confirmation", STRING, "Accepted and ignored.")],
    "responses": {
        "200": _json("Deleted.", _ref("WorkspaceDeleted")),
        "403": _error(_USER_ONLY_403),
        "404": _error("No such workspace, or the token's own workspace is gone."),
    },
}

_LIMIT_FIELDS: Final[dict[str, Schema]] = {
    key: {"type": "string", "description": "A number >= 0 (0 = unlimited); empty removes the override."}
    for key in ("workspace_rps", "workspace_burst", "datasource_rps", "datasource_burst", "workspace_mbps")
}

WORKSPACE_LIMITS_GET: Final[dict[str, Any]] = {
    "operationId": "workspaces_limits_get",
    "tags": ["workspaces"],
    "summary": "A workspace's effective /v0/events rate limits (user token)",
    "security": SECURED,
    "parameters": [_WORKSPACE_ID],
    "responses": {
        "200": _json("Effective limits and the overrides in force.", _ref("WorkspaceLimits")),
        "403": _error(_USER_ONLY_403),
        "404": _error("No such workspace, or the token's own workspace is gone."),
    },
}


def _limits_set(operation_id: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "tags": ["workspaces"],
        "summary": "Override a workspace's /v0/events rate limits (user token)",
        "security": SECURED,
        "parameters": [_WORKSPACE_ID],
        "requestBody": _form_body(_LIMIT_FIELDS),
        "responses": {
            "200": _json("Effective limits and the overrides in force.", _ref("WorkspaceLimits")),
            "400": _error("A value that is not a finite number >= 0, or an invalid JSON body."),
            "403": _error(_USER_ONLY_403),
            "404": _error("No such workspace, or the token's own workspace is gone."),
            "413": _error("A JSON body over 1 MiB."),
        },
    }


LOCAL_TOKENS: Final[dict[str, Any]] = {
    "operationId": "local_tokens",
    "tags": ["local"],
    "summary": "Tinybird Local: the default workspace's tokens, without authentication (`birdhouse local` only)",
    "responses": {
        "200": _json("The three tokens the tb CLI expects.", _ref("LocalTokens")),
        "404": _error("Not a local server, or `local.tokens_endpoint=false`."),
        "503": _error("The default workspace is not ready."),
    },
}

HEALTH: Final[dict[str, Any]] = {
    "operationId": "health",
    "tags": ["local"],
    "responses": {
        "200": _json("The storage answers and the write-ahead log is replayed.", _ref("Health")),
        "503": _json("Storage down, or still replaying the write-ahead log.", _ref("Health")),
    },
}

REGIONS: Final[dict[str, Any]] = {
    "operationId": "regions",
    "tags": ["local"],
    "responses": {"200": _json("This server as the only region (no telemetry token).", _ref("Regions"))},
}

PING: Final[dict[str, Any]] = {
    "operationId": "ping",
    "tags": ["local"],
    "responses": {
        "200": {"description": "`ok`", "content": {"text/plain": {"schema": {"type": "string", "const": "ok"}}}}
    },
}

METRICS: Final[dict[str, Any]] = {
    "operationId": "metrics",
    "tags": ["local"],
    "summary": "Prometheus metrics",
    "description": "Open unless `server.metrics_token` is set; then that exact token is required (compared in "
    "constant time), not a workspace token.",
    "security": [{}, *SECURED],
    "responses": {
        "200": {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": STRING}},
        },
        "403": _error("`server.metrics_token` is set and was not presented."),
    },
}

OPENAPI_GET: Final[dict[str, Any]] = {
    "operationId": "openapi",
    "tags": ["local"],
    "summary": "This document",
    "responses": {"200": _json("OpenAPI 3.1", {"type": "object", "required": ["openapi", "paths"]})},
}


def _alias(operation: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The same operation under a second path (trailing slash, /v0 vs /v1)."""
    copied = copy.deepcopy(operation)
    copied["operationId"] = f"{operation['operationId']}_{suffix}"
    return copied


_OBJECT: Final[Schema] = {"type": "object"}


def _operation(
    operation_id: str, tag: str, ok: str, extra: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    """A secured JSON operation whose errors are the API's ``{"error"}`` shape."""
    responses: dict[str, Any] = {"200": _json(ok, _OBJECT), "400": _error("Invalid parameters."), **_auth_errors()}
    responses.update(extra or {})
    return {"operationId": operation_id, "tags": [tag], "security": SECURED, "responses": responses, **more}


WORKSPACE_CURRENT: Final = _operation("workspace_current", "local", "The token's workspace (tb CLI 4.x checks it).")
JOBS_LIST: Final = _operation(
    "jobs_list",
    "datasources",
    "`{jobs: [Job]}`: the last 100 import jobs this token can see.",
    parameters=[_query("status", {"type": "string"}), _query("kind", {"type": "string"})],
)
JOB_GET: Final = _operation(
    "job_get", "datasources", "One job (SPEC §10.3).", parameters=[_path("job_id", "The job (import) id.")]
)
JOB_CANCEL: Final = _operation(
    "job_cancel",
    "datasources",
    "Never: accepted rows cannot be cancelled (400).",
    parameters=[_path("job_id", "The job (import) id.")],
)
V1_APPEND: Final = _operation(
    "v1_datasource_append",
    "datasources",
    "A job for the appended rows (durable in the write-ahead log).",
    {
        "413": _error("Body over the caps."),
        "415": _error("Unsupported Content-Encoding."),
        "503": _error("Nothing was accepted; retry."),
    },
    parameters=[_path("name", "Data source name or id."), _query("format", {"type": "string"})],
    requestBody={"required": False, "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
)
PIPES_LIST: Final = _operation("pipes_list", "pipes", "`{pipes: [Pipe]}` this token can see.")
PIPE_GET: Final = _operation(
    "pipe_get",
    "pipes",
    "The pipe, its datafile (`.pipe`) or an endpoint's result (`.json`, `.csv`, `.ndjson`, `.parquet`).",
    {"408": _error("The endpoint query timed out."), "501": _error("The storage cannot guard queries.")},
    parameters=[_path("name", "Pipe name, optionally with a format suffix.")],
)
PIPE_DELETE: Final = _operation(
    "pipe_delete",
    "pipes",
    "Deleted (its materialized views are dropped).",
    {"204": {"description": "Deleted."}},
    parameters=[_path("name", "Pipe name or id.")],
)
DEADLETTER_LIST: Final = _operation("deadletter_list", "local", "`{letters: [...]}` (user token).")
DEADLETTER_REPLAY: Final = _operation(
    "deadletter_replay",
    "local",
    "Repaired: the failed views re-ran over the parked rows, or the rows were delivered again.",
    {"409": _error("Not repaired; the reason is given.")},
    parameters=[_path("name", "The letter's file name.")],
)

PATHS: Final[dict[str, dict[str, Any]]] = {
    "/v0/events": {"post": EVENTS_POST, "options": EVENTS_OPTIONS},
    "/v0/events/": {"post": _alias(EVENTS_POST, "slash"), "options": _alias(EVENTS_OPTIONS, "slash")},
    "/v0/sql": {"get": SQL_GET, "post": SQL_POST},
    "/v0/datasources": {"get": DATASOURCES_LIST, "post": DATASOURCES_CREATE},
    "/v0/datasources/": {"get": _alias(DATASOURCES_LIST, "slash"), "post": _alias(DATASOURCES_CREATE, "slash")},
    "/v0/datasources/{name}": {"get": DATASOURCE_GET, "put": DATASOURCE_UPDATE, "delete": DATASOURCE_DELETE},
    "/v0/datasources/{name}/truncate": {"post": DATASOURCE_TRUNCATE},
    "/v0/analyze": {"post": ANALYZE},
    "/v0/analyze/": {"post": _alias(ANALYZE, "slash")},
    "/v0/tokens": {"get": TOKENS_LIST, "post": TOKENS_CREATE},
    "/v0/tokens/": {"post": _alias(TOKENS_CREATE, "slash")},
    "/v0/tokens/{token}": {"get": TOKEN_GET, "put": TOKEN_UPDATE, "delete": TOKEN_DELETE},
    "/v0/tokens/{token}/refresh": {"post": TOKEN_REFRESH},
    "/v1/user/workspaces": {"get": WORKSPACES_LIST, "post": _alias(WORKSPACES_CREATE, "user")},
    "/v0/user/workspaces": {"get": _alias(WORKSPACES_LIST, "v0")},
    "/v1/workspaces": {"post": WORKSPACES_CREATE},
    "/v1/workspaces/{workspace_id}": {"delete": WORKSPACE_DELETE},
    "/v0/workspaces/{workspace_id}": {"delete": _alias(WORKSPACE_DELETE, "v0")},
    "/v1/workspaces/{workspace_id}/limits": {
        "get": WORKSPACE_LIMITS_GET,
        "put": _limits_set("workspaces_limits_put"),
        "post": _limits_set("workspaces_limits_post"),
    },
    "/tokens": {"get": LOCAL_TOKENS},
    "/v0/health": {"get": HEALTH},
    "/v0/regions": {"get": REGIONS},
    "/ping": {"get": PING},
    "/metrics": {"get": METRICS},
    "/v0/openapi.json": {"get": OPENAPI_GET},
    "/v1/workspace": {"get": WORKSPACE_CURRENT},
    "/v0/jobs": {"get": JOBS_LIST},
    "/v0/jobs/{job_id}": {"get": JOB_GET},
    "/v0/jobs/{job_id}/cancel": {"post": JOB_CANCEL},
    "/v1/datasources/{name}/append": {"post": V1_APPEND},
    "/v0/pipes": {"get": PIPES_LIST},
    "/v0/pipes/{name}": {"get": PIPE_GET, "delete": PIPE_DELETE},
    "/v0/deadletter": {"get": DEADLETTER_LIST},
    "/v0/deadletter/{name}/replay": {"post": DEADLETTER_REPLAY},
}

OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "birdhouse",
        "version": "1",
        "summary": "A self-hosted, wire-compatible implementation of Tinybird's Events API.",
        "description": __doc__,
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "servers": [{"url": "http://127.0.0.1:7181", "description": "`birdhouse local` default"}],
    "tags": [
        {"name": "events", "description": "Ingestion (SPEC §1–3)"},
        {"name": "query", "description": "Read-only SQL (SPEC §10.2)"},
        {"name": "datasources", "description": "Data Sources API (SPEC §10.1)"},
        {"name": "tokens", "description": "Tokens API (SPEC §7.5)"},
        {"name": "workspaces", "description": "Workspace management with the user token (SPEC §10.4)"},
        {"name": "local", "description": "Tinybird Local compatibility and health (SPEC §10.4)"},
        {"name": "pipes", "description": "Materialized views and endpoint pipes (SPEC §0.4, §8.4)"},
    ],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <token>`"},
            "tokenQuery": {
                "type": "apiKey",
                "in": "query",
                "name": "token",
                "description": "`?token=<token>`; wins over the header (tb CLI 5 sends it on every call).",
            },
        },
    },
}


async def openapi_json(request: Request) -> Response:
    return JSONResponse(OPENAPI)


routes = [Route("/v0/openapi.json", openapi_json, methods=["GET"])]
