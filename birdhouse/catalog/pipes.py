"""Pipe lifecycle: materialized views in the engine, endpoint queries, the catalog record.

A pipe is a list of SQL nodes (:mod:`birdhouse.schema.pipefile`). A node can
select FROM an earlier node by name (Tinybird semantics); that is done by
inlining the earlier nodes it uses as ``WITH <node> AS (<sql>)`` CTEs.

- A **materialized** node becomes ``CREATE MATERIALIZED VIEW <db>.<pipe>__<node>_mv
  TO <db>.<target> AS <SELECT>``. The SELECT goes through the same read-only
  guard as ``/v0/sql`` (:func:`birdhouse.query.guard.guard_query`), so it can
  read only this workspace's data sources and is rewritten to qualified names
  before the engine sees it; its output columns must match the target's.
  Existing rows of the source are **not** backfilled (Tinybird's default for a
  new materialized view): only inserts after creation reach the target.
- An **endpoint** node is run per request by
  :func:`birdhouse.catalog.endpoints.run_endpoint`, through the
  same guard, with its ``{{Type(name, default)}}`` parameters bound as engine
  query parameters: values never become SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from birdhouse.backends import Backend, BackendError
from birdhouse.catalog.catalog import Catalog, CatalogError
from birdhouse.catalog.datasources import table_ref
from birdhouse.catalog.models import DataSource, Pipe, PipeNode, Workspace, new_pipe_id, utc_now
from birdhouse.catalog.tokens import Scope
from birdhouse.query.errors import SqlRefused
from birdhouse.query.guard import GuardedQuery, guard_query
from birdhouse.query.lexer import tokenize
from birdhouse.query.rewrite import identifier_value, table_positions
from birdhouse.schema.names import InvalidName, validate_datasource_name
from birdhouse.schema.pipefile import PipeFile, PipeFileError, TemplateParam, parse_template

__all__ = [
    "MvFailure",
    "create_pipe",
    "drop_pipe",
    "endpoint_node",
    "guard_pipe_sql",
    "mv_failure",
    "mv_table",
    "node_query",
    "pipe_params",
    "pipes_using",
    "views_reading",
    "workspace_tables",
]

# Stand-in values that let the guard parse an endpoint at creation (EXPLAIN AST
# needs every placeholder bound); requests bind the real ones.
_SAMPLE_VALUES = {"String": "", "Bool": "false", "Date": "1970-01-01", "DateTime": "1970-01-01 00:00:00"}


def mv_table(pipe_name: str, node_name: str) -> str:
    """The engine name of a materialized node's view (names are identifiers: no quoting issue)."""
    return f"{pipe_name}__{node_name}_mv"


# ----------------------------------------------------------------- node SQL


def _used_names(sql: str) -> set[str]:
    names: set[str] = set()
    for token in tokenize(sql):
        if token.is_identifier:
            try:
                names.add(identifier_value(token))
            except SqlRefused:
                continue
    return names


def node_query(nodes: Sequence[PipeNode], index: int) -> tuple[str, list[TemplateParam]]:
    """The SQL of ``nodes[index]`` with the earlier nodes it uses (transitively) as CTEs,
    templates rendered to ``{name:Type}`` placeholders; and every parameter involved.

    An earlier node shadows a data source of the same name in later nodes (a
    CTE wins over a table), as in Tinybird; a node's own SQL still reads the
    data source it is named after."""
    rendered: list[tuple[str, list[TemplateParam]]] = []
    for node in nodes[: index + 1]:
        try:
            rendered.append(parse_template(node.sql))
        except PipeFileError as exc:
            raise CatalogError(f"Node '{node.name}': {exc}") from None
    names = [node.name for node in nodes[: index + 1]]
    needed: set[int] = set()
    pending = [index]
    while pending:
        current = pending.pop()
        used = _used_names(rendered[current][0])
        for earlier in range(current):
            if names[earlier] in used and earlier not in needed:
                needed.add(earlier)
                pending.append(earlier)
    params: dict[str, TemplateParam] = {}
    for i in [*sorted(needed), index]:
        for param in rendered[i][1]:
            seen = params.get(param.name)
            if seen is not None and seen.type != param.type:
                raise CatalogError(f"Parameter '{param.name}' is used as both {seen.type} and {param.type}")
            if seen is None or (seen.default is None and param.default is not None):
                params[param.name] = param
    sql = rendered[index][0].strip()
    if needed:
        ctes = ", ".join(f"{names[i]} AS (\n{rendered[i][0].strip()}\n)" for i in sorted(needed))
        significant = [t for t in tokenize(sql) if t.significant]
        if significant and significant[0].is_word("WITH"):
            start = significant[0].start + len(significant[0].text)
            sql = f"WITH {ctes},{sql[start:]}"
        else:
            sql = f"WITH {ctes}\n{sql}"
    return sql, list(params.values())


def pipe_params(pipe: Pipe) -> list[TemplateParam]:
    node = endpoint_node(pipe)
    if node is None:
        return []
    return node_query(pipe.nodes, pipe.nodes.index(node))[1]


def endpoint_node(pipe: Pipe) -> PipeNode | None:
    return next((n for n in pipe.nodes if n.type == "endpoint"), None)


# -------------------------------------------------------------------- guard


def workspace_tables(catalog: Catalog, workspace: Workspace) -> dict[str, str]:
    tables: dict[str, str] = {}
    for datasource in catalog.workspace_datasources(workspace.id):
        tables[datasource.name] = datasource.id
        tables[datasource.quarantine_name] = datasource.id
    return tables


def guard_pipe_sql(
    backend: Backend,
    workspace: Workspace,
    sql: str,
    tables: Mapping[str, str],
    readable: Callable[[str], bool],
    params: Mapping[str, str],
    filters: Mapping[str, str] | None = None,
) -> GuardedQuery:
    if not backend.capabilities.explain_ast or not backend.capabilities.query_params:
        raise CatalogError(
            f"Pipes need EXPLAIN AST and query parameters, which ClickHouse {backend.capabilities.version} lacks",
            501,
        )

    def explain(text: str) -> str:
        # Placeholders must be bound for the engine to parse; the dump then
        # shows each value as a typed literal, which the guard accepts.
        return backend.query("EXPLAIN AST " + text, "TSVRaw", params=dict(params) or None).body.decode()

    return guard_query(
        sql,
        database=workspace.database,
        known_tables=tables.keys(),
        readable=readable,
        explain_ast=explain,
        filters=filters,
    )


def _sample_value(param: TemplateParam) -> str:
    if param.default is not None:
        return param.default
    return _SAMPLE_VALUES.get(param.type, "1970-01-01 00:00:00" if param.type.startswith("DateTime") else "0")


# ------------------------------------------------------- materialized views


def mv_statement(
    catalog: Catalog, workspace: Workspace, pipe_name: str, nodes: Sequence[PipeNode], index: int
) -> tuple[str, str]:
    """``(view name, CREATE MATERIALIZED VIEW …)`` for ``nodes[index]``, validated."""
    node = nodes[index]
    target = catalog.datasources.get(node.datasource_id)
    if target is None or target.workspace_id != workspace.id:
        raise CatalogError(f"Node '{node.name}': its target Data Source no longer exists")
    sql, params = node_query(nodes, index)
    if params:
        raise CatalogError(f"Node '{node.name}': a materialized node cannot have parameters")
    tables = workspace_tables(catalog, workspace)
    try:
        guarded = guard_pipe_sql(catalog.backend, workspace, sql, tables, lambda _name: True, {})
    except SqlRefused as exc:
        raise CatalogError(f"Node '{node.name}': {exc.message}", 403 if exc.status == 403 else 400) from None
    first = next((t for t in tokenize(guarded.sql) if t.significant), None)
    if first is not None and first.is_word("DESCRIBE", "DESC"):
        raise CatalogError(f"Node '{node.name}': a materialized node must be a SELECT")
    if not guarded.tables:
        raise CatalogError(f"Node '{node.name}': a materialized node must read FROM a data source")
    _check_columns(catalog.backend, node.name, guarded.sql, target)
    view = table_ref(workspace, mv_table(pipe_name, node.name))
    return view, f"CREATE MATERIALIZED VIEW {view} TO {table_ref(workspace, target.name)} AS {guarded.sql}"


def _check_columns(backend: Backend, node_name: str, sql: str, target: DataSource) -> None:
    try:
        described = backend.query(f"DESCRIBE ({sql})", "JSONEachRow").body
    except BackendError as exc:
        raise CatalogError(f"Node '{node_name}': {exc.message}") from None
    output: dict[str, str] = {}
    for line in described.splitlines():
        row = msgspec.json.decode(line)
        output[row["name"]] = row["type"]
    writable = {c.name: c for c in target.columns if c.default_kind not in ("MATERIALIZED", "ALIAS")}
    extra = [name for name in output if name not in writable]
    missing = [name for name, c in writable.items() if name not in output and c.default_kind != "DEFAULT"]
    problems: list[str] = []
    if extra:
        problems.append(f"the SELECT returns columns the target lacks: {', '.join(extra)}")
    if missing:
        problems.append(f"the target columns {', '.join(missing)} are missing from the SELECT")
    for name, column in writable.items():
        wanted = column.type.replace(" ", "")
        got = output.get(name)
        if got is not None and wanted.startswith("AggregateFunction(") and got.replace(" ", "") != wanted:
            function = wanted[len("AggregateFunction(") :].split(",")[0].rstrip(")")
            problems.append(
                f"column '{name}' is {column.type} in the target but the SELECT gives {got} (use {function}State(…))"
            )
    if problems:
        raise CatalogError(
            f"Node '{node_name}': the SELECT does not match the columns of Data Source '{target.name}': "
            + "; ".join(problems)
        )


def _mv_statements(
    catalog: Catalog, workspace: Workspace, pipe_name: str, nodes: Sequence[PipeNode]
) -> list[tuple[str, str]]:
    return [
        mv_statement(catalog, workspace, pipe_name, nodes, i) for i, n in enumerate(nodes) if n.type == "materialized"
    ]


def _drop_views(catalog: Catalog, views: Sequence[str]) -> None:
    for view in views:
        catalog.backend.command(f"DROP VIEW IF EXISTS {view}")


# ------------------------------------------------------------- create / drop


def _nodes_from_file(catalog: Catalog, workspace: Workspace, parsed: PipeFile) -> list[PipeNode]:
    datasources = {d.name: d for d in catalog.workspace_datasources(workspace.id)}
    nodes: list[PipeNode] = []
    for node in parsed.nodes:
        target_id = ""
        if node.type == "materialized":
            assert node.datasource is not None
            target = datasources.get(node.datasource)
            if target is None:
                raise CatalogError(
                    f"Node '{node.name}': Data Source '{node.datasource}' not found; the target of a materialized "
                    "view must be a deployed data source (deploy its .datasource file first)"
                )
            target_id = target.id
        nodes.append(PipeNode(name=node.name, sql=node.sql, description=node.description or "", type=node.type,
                              datasource_id=target_id))  # fmt: skip
    return nodes


def _validate_endpoints(catalog: Catalog, workspace: Workspace, nodes: Sequence[PipeNode]) -> None:
    tables = workspace_tables(catalog, workspace)
    for index, node in enumerate(nodes):
        if node.type == "materialized":
            continue
        sql, params = node_query(nodes, index)
        try:
            guard_pipe_sql(
                catalog.backend, workspace, sql, tables, lambda _name: True, {p.name: _sample_value(p) for p in params}
            )
        except SqlRefused as exc:
            raise CatalogError(f"Node '{node.name}': {exc.message}") from None


def _grant_tokens(catalog: Catalog, workspace: Workspace, pipe: Pipe, tokens: Sequence[tuple[str, str]]) -> None:
    # Scopes written before the pipe existed (PIPES:READ:<name>) now bind to its id.
    for token in catalog.workspace_tokens(workspace.id):
        if any(s.type.startswith("PIPES:") and s.resource == pipe.name for s in token.scopes):
            token.scopes = [
                Scope(s.type, pipe.id, s.filter) if s.type.startswith("PIPES:") and s.resource == pipe.name else s
                for s in token.scopes
            ]
            catalog.save_token(token)
    for name, permission in tokens:
        scope = Scope(f"PIPES:{permission}", pipe.id)
        found = catalog.find_token(workspace.id, name)
        if found is None:
            catalog.mint(workspace, name, [scope])
        elif scope not in found.scopes:
            found.scopes = [*found.scopes, scope]
            catalog.save_token(found)


def create_pipe(
    catalog: Catalog,
    workspace: Workspace,
    name: str,
    parsed: PipeFile,
    source: str = "",
    *,
    replace: bool = False,
) -> Pipe:
    """Create (or with ``replace`` swap in) a pipe: validate every node, then the views.

    All-or-nothing: if a view cannot be created, the views created so far are
    dropped and a replaced pipe's own views are restored.
    """
    try:
        validate_datasource_name(name)
    except InvalidName as exc:
        raise CatalogError(str(exc).replace("Data Source", "Pipe")) from None
    with catalog.lock:
        if catalog.find_datasource(workspace.id, name) is not None:
            raise CatalogError(f"There is already a resource with name '{name}'", 409)
        existing = catalog.find_pipe(workspace.id, name)
        if existing is not None and not replace:
            raise CatalogError(f"There is already a Pipe with name '{name}'", 409)
        nodes = _nodes_from_file(catalog, workspace, parsed)
        _validate_endpoints(catalog, workspace, nodes)
        statements = _mv_statements(catalog, workspace, name, nodes)
        old_views: list[str] = []
        if existing is not None:
            old_views = [table_ref(workspace, mv_table(existing.name, n.name)) for n in existing.nodes
                         if n.type == "materialized"]  # fmt: skip
            _drop_views(catalog, old_views)
        created: list[str] = []
        try:
            for view, statement in statements:
                catalog.backend.command(statement)
                created.append(view)
        except BackendError as exc:
            _drop_views(catalog, created)
            if existing is not None:
                _restore(catalog, workspace, existing)
            raise CatalogError(f"Could not create the materialized view of pipe '{name}': {exc.message}") from None
        now = utc_now()
        pipe = Pipe(
            id=existing.id if existing else new_pipe_id(),
            workspace_id=workspace.id,
            name=name,
            nodes=nodes,
            description=parsed.description or "",
            source=source,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        catalog.save_pipe(pipe)
        _grant_tokens(catalog, workspace, pipe, parsed.tokens)
        return pipe


def _restore(catalog: Catalog, workspace: Workspace, pipe: Pipe) -> None:
    try:
        for _view, statement in _mv_statements(catalog, workspace, pipe.name, pipe.nodes):
            catalog.backend.command(statement)
    except (BackendError, CatalogError):
        pass  # the record stays; the error the caller gets says the swap failed


def drop_pipe(catalog: Catalog, workspace: Workspace, pipe: Pipe) -> None:
    """Drop the pipe's views (their targets keep their rows), then the record and its scopes."""
    with catalog.lock:
        _drop_views(
            catalog, [table_ref(workspace, mv_table(pipe.name, n.name)) for n in pipe.nodes if n.type == "materialized"]
        )
        catalog.forget_pipe(pipe)


def pipes_using(catalog: Catalog, workspace: Workspace, datasource: DataSource) -> list[Pipe]:
    """Pipes with a materialized node that reads or writes ``datasource``."""
    found: list[Pipe] = []
    for pipe in catalog.workspace_pipes(workspace.id):
        for index, node in enumerate(pipe.nodes):
            if node.type != "materialized":
                continue
            if node.datasource_id == datasource.id or _reads(pipe.nodes, index) & {
                datasource.name,
                datasource.quarantine_name,
            }:
                found.append(pipe)
                break
    return found


def views_reading(catalog: Catalog, workspace: Workspace, datasource: DataSource) -> list[str]:
    """Engine names of the views an insert into ``datasource`` fires (for the flush path)."""
    return [
        mv_table(pipe.name, node.name)
        for pipe in catalog.workspace_pipes(workspace.id)
        for index, node in enumerate(pipe.nodes)
        if node.type == "materialized" and datasource.name in _reads(pipe.nodes, index)
    ]


def _reads(nodes: Sequence[PipeNode], index: int) -> set[str]:
    try:
        sql, _ = node_query(nodes, index)
    except CatalogError:
        return set()
    tokens = tokenize(sql)
    sig = [i for i, t in enumerate(tokens) if t.significant]
    try:
        return {position.name for position in table_positions(tokens, sig)}
    except SqlRefused:
        return set()


# ------------------------------------------------------- failures at insert


@dataclass(frozen=True)
class MvFailure:
    """What an insert error says about materialized views (for SPEC §8.4 E21/E22).

    ``views`` are the failed views' engine names (``<pipe>__<node>_mv``) in the
    data source's workspace; ``landing_committed`` is False only for a ``Null``
    landing engine, where nothing was stored.
    """

    views: tuple[str, ...]
    landing_committed: bool
    detail: str


_PUSHING_RE = re.compile(r"while pushing to view `?([A-Za-z0-9_]+)`?\.`?([A-Za-z0-9_]+)`?")


def mv_failure(workspace: Workspace, datasource: DataSource, error: BackendError) -> MvFailure | None:
    """Classify a landing-insert error: None unless the engine says a view failed
    (its message names each view as ``while pushing to view <db>.<view>``)."""
    views = tuple(dict.fromkeys(view for db, view in _PUSHING_RE.findall(error.message) if db == workspace.database))
    if not views:
        return None
    return MvFailure(views, datasource.engine.engine != "Null", error.message)
