"""Running a pipe's endpoint node for a request: ``GET /v0/pipes/<name>.json``.

Parameters are checked here (type, range, required) and bound as engine query
parameters; the SQL goes through the ``/v0/sql`` guard with the pipe's
workspace and the same engine-side read-only mode and limits (see
:mod:`birdhouse.query.execute`). Who may call: ADMIN or ``PIPES:READ:<pipe>``
(the pipe's own SQL then decides what it reads), or a token with read scopes
on every data source the pipe reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from birdhouse.backends import Backend, BackendError
from birdhouse.catalog.access import Principal
from birdhouse.catalog.catalog import Catalog, CatalogError
from birdhouse.catalog.models import Pipe
from birdhouse.catalog.pipes import endpoint_node, guard_pipe_sql, node_query, workspace_tables
from birdhouse.config import SqlSettings
from birdhouse.query.errors import SqlRefused
from birdhouse.query.execute import TIMEOUT_CODES, QueryOutput, content_type, read_only_settings
from birdhouse.query.guard import check_filter
from birdhouse.schema.pipefile import TemplateParam
from birdhouse.schema.types import int_range

__all__ = ["PipeQueryFailed", "bind_params", "may_read_pipe", "run_endpoint"]

_INT_RE = re.compile(r"[+-]?[0-9]+")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\\0"})


class PipeQueryFailed(Exception):
    """An endpoint request that cannot be answered; ``status`` maps to HTTP."""

    def __init__(self, message: str, status: int = 400, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def _check_value(param: TemplateParam, raw: str) -> str:
    def invalid() -> PipeQueryFailed:
        shown = raw if len(raw) <= 100 else raw[:100] + "…"
        return PipeQueryFailed(f"Invalid value '{shown}' for parameter '{param.name}': expected {param.type}")

    kind = param.type
    if "\x00" in raw and kind != "String":
        raise invalid()
    if kind.startswith(("Int", "UInt")):
        if not _INT_RE.fullmatch(raw.strip()):
            raise invalid()
        low, high = int_range(kind)
        if not low <= int(raw) <= high:
            raise invalid()
        return str(int(raw))
    if kind.startswith("Float"):
        try:
            value = float(raw)
        except ValueError:
            raise invalid() from None
        if math.isnan(value) and raw.strip().lower() != "nan":
            raise invalid()
        return raw.strip()
    if kind == "Bool":
        lowered = raw.strip().lower()
        if lowered in ("true", "1"):
            return "true"
        if lowered in ("false", "0"):
            return "false"
        raise invalid()
    if kind == "String":
        # The engine reads parameter values in its escaped (TSV) text format,
        # where a backslash starts an escape and a tab or newline ends the value:
        # escape those so the value arrives exactly as sent.
        return raw.translate(_ESCAPES)
    return raw  # Date, DateTime: the engine parses and reports (BAD_QUERY_PARAMETER)


def bind_params(params: Sequence[TemplateParam], values: Mapping[str, str]) -> dict[str, str]:
    """Values for every parameter: given, else its default; missing required → 400."""
    bound: dict[str, str] = {}
    for param in params:
        raw = values.get(param.name)
        if raw is None:
            if param.default is None:
                raise PipeQueryFailed(f"The parameter '{param.name}' ({param.type}) is required")
            raw = param.default
        bound[param.name] = _check_value(param, raw)
    return bound


def may_read_pipe(principal: Principal, pipe: Pipe) -> bool:
    """ADMIN or a PIPES:READ scope on this pipe: the pipe's own SQL decides what it reads."""
    return principal.is_admin or any(s.type == "PIPES:READ" and s.resource == pipe.id for s in principal.token.scopes)


def run_endpoint(
    backend: Backend,
    catalog: Catalog,
    principal: Principal,
    pipe: Pipe,
    values: Mapping[str, str],
    fmt: str,
    limits: SqlSettings,
    passthrough: Mapping[str, str] | None = None,
) -> QueryOutput:
    """Run the pipe's endpoint node for ``principal`` with request ``values``; output in ``fmt``."""
    workspace = principal.workspace
    assert workspace is not None
    assert workspace.id == pipe.workspace_id
    node = endpoint_node(pipe)
    if node is None:
        raise PipeQueryFailed(f"The pipe '{pipe.name}' has no endpoint node (TYPE ENDPOINT)", 404)
    try:
        sql, params = node_query(pipe.nodes, pipe.nodes.index(node))
    except CatalogError as exc:
        raise PipeQueryFailed(exc.message) from None
    bound = bind_params(params, values)
    tables = workspace_tables(catalog, workspace)
    whole_pipe = may_read_pipe(principal, pipe)
    if not principal.is_admin:
        pipe_filters = [s.filter for s in principal.token.scopes if s.type == "PIPES:READ" and s.resource == pipe.id]
        if pipe_filters and None not in pipe_filters:
            # PIPES:READ:<pipe>:<filter> filters the endpoint's rows.
            try:
                row_filter = check_filter(pipe_filters[0] or "")
            except SqlRefused as exc:
                raise PipeQueryFailed(exc.message, 400) from None
            sql = f"SELECT * FROM ({sql}) WHERE ({row_filter})"

    def readable(name: str) -> bool:
        ds_id = tables.get(name)
        return ds_id is not None and (whole_pipe or principal.can_read(ds_id))

    try:
        guarded = guard_pipe_sql(backend, workspace, sql, tables, readable, bound, principal.row_filters(tables))
    except SqlRefused as exc:
        raise PipeQueryFailed(exc.message, exc.status) from None
    except CatalogError as exc:
        raise PipeQueryFailed(exc.message, exc.status) from None
    settings = read_only_settings(limits, passthrough)
    try:
        result = backend.query(guarded.sql, fmt, params=bound or None, settings=settings)
    except BackendError as exc:
        status = 408 if exc.code in TIMEOUT_CODES else 400
        raise PipeQueryFailed(exc.message, status, exc.code) from None
    return QueryOutput(result.body, content_type(fmt))
