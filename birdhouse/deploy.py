"""``birdhouse deploy DIR``: apply ``.datasource`` then ``.pipe`` files to a running server.

Plan first, then apply. The plan reads every file and the server's current
state and refuses the whole deploy if any file is invalid or asks for a
change birdhouse cannot make in place (a different column list or engine),
or if a materialized node targets a data source that is neither in the
project nor deployed: nothing is half-applied. Data sources are applied
first, then pipes (created, or replaced when their text changed). If a step
fails, the pipes and data sources created so far are removed again and
replaced pipes get their previous text back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdhouse.client import Client, ClientError
from birdhouse.schema.columns import is_json_typed, parse_schema
from birdhouse.schema.datafile import DatafileError, DatasourceFile, parse_datasource_file
from birdhouse.schema.engine import EngineSpec
from birdhouse.schema.pipefile import PipeFile, PipeFileError, parse_pipe_file

INTERNAL_SCOPES = ("ADMIN_USER", "USER")


class DeployError(Exception):
    """The deploy was refused or failed; nothing (more) was applied."""


@dataclass
class Plan:
    create: list[tuple[str, DatasourceFile]] = field(default_factory=list)
    update: list[tuple[str, DatasourceFile]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # (name, datafile text); replaced pipes also keep the deployed text for rollback.
    create_pipes: list[tuple[str, str]] = field(default_factory=list)
    replace_pipes: list[tuple[str, str, str]] = field(default_factory=list)
    unchanged_pipes: list[str] = field(default_factory=list)
    # Every data source file of the project: its TOKEN lines are granted idempotently.
    datafiles: dict[str, DatasourceFile] = field(default_factory=dict)


def parse_datasource(text: str) -> DatasourceFile:
    """A ``.datasource`` file; any engine type unless it is JSON-typed (fed by
    /v0/events): a materialized view's target may hold ``AggregateFunction`` columns."""
    datafile = parse_datasource_file(text, check_types=False)
    if is_json_typed(datafile.columns):
        datafile = parse_datasource_file(text)
    return datafile


def _engine_params(engine: EngineSpec) -> dict[str, str]:
    params = {"engine": engine.engine}
    for key in ("sorting_key", "partition_key", "primary_key", "ttl", "ver", "sign", "version", "settings"):
        value = getattr(engine, key)
        if value:
            params[f"engine_{key}"] = value
    return params


def _differences(name: str, wanted: DatasourceFile, current: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    current_columns = parse_schema(current["schema"]["sql_schema"], check_types=False)
    if current_columns != wanted.columns:
        have = ", ".join(c.schema_sql() for c in current_columns)
        want = ", ".join(c.schema_sql() for c in wanted.columns)
        problems.append(f"{name}: the schema differs from the deployed one.\n  deployed: {have}\n  in file:  {want}")
    engine = current["engine"]
    for key, value in (
        ("engine", wanted.engine.engine),
        ("sorting_key", wanted.engine.sorting_key),
        ("partition_key", wanted.engine.partition_key),
        ("ttl", wanted.engine.ttl),
    ):
        if value and str(engine.get(key) or "") != value:
            problems.append(f"{name}: {key} is '{engine.get(key)}' on the server, '{value}' in the file")
    return problems


def _parse_files(directory: Path) -> tuple[dict[str, DatasourceFile], dict[str, tuple[Path, str, PipeFile]]]:
    files = sorted(directory.rglob("*.datasource"))
    pipe_files = sorted(directory.rglob("*.pipe"))
    if not files and not pipe_files:
        raise DeployError(f"no .datasource or .pipe files under {directory}")
    parsed: dict[str, DatasourceFile] = {}
    pipes: dict[str, tuple[Path, str, PipeFile]] = {}
    errors: list[str] = []
    for path in files:
        try:
            parsed[path.stem] = parse_datasource(path.read_text())
        except (DatafileError, ValueError) as exc:
            errors.append(f"{path}: {exc}")
    for path in pipe_files:
        text = path.read_text()
        try:
            pipes[path.stem] = (path, text, parse_pipe_file(text))
        except PipeFileError as exc:
            errors.append(f"{path}: {exc}")
        if path.stem in parsed:
            errors.append(f"{path}: there is also a data source named '{path.stem}'")
    if errors:
        raise DeployError("\n".join(errors))
    return parsed, pipes


def _plan_pipes(client: Client, plan: Plan, pipes: dict[str, tuple[Path, str, PipeFile]], known: set[str]) -> None:
    errors: list[str] = []
    for path, _text, pipe in pipes.values():
        for node in pipe.materialized:
            if node.datasource not in known:
                errors.append(
                    f"{path}: NODE {node.name}: DATASOURCE '{node.datasource}' is neither in this project nor deployed"
                )
    if errors:
        raise DeployError("\n".join(errors))
    deployed = {p["name"] for p in client.json("GET", "/v0/pipes")["pipes"]} if pipes else set()
    for name, (_path, text, _pipe) in sorted(pipes.items()):
        if name not in deployed:
            plan.create_pipes.append((name, text))
            continue
        current = client.request("GET", f"/v0/pipes/{name}.pipe").text
        if current == text:
            plan.unchanged_pipes.append(name)
        else:
            plan.replace_pipes.append((name, text, current))


def plan_deploy(client: Client, directory: Path) -> Plan:
    parsed, pipes = _parse_files(directory)
    errors: list[str] = []
    existing = {d["name"]: d for d in client.json("GET", "/v0/datasources")["datasources"]}
    plan = Plan(datafiles=dict(parsed))
    for name, datafile in parsed.items():
        if name not in existing:
            plan.create.append((name, datafile))
            continue
        errors.extend(_differences(name, datafile, existing[name]))
        current = existing[name]
        if (datafile.description or "") != current.get("description", "") or (
            list(datafile.tags) != list(current.get("tags") or [])
        ):
            plan.update.append((name, datafile))
        else:
            plan.unchanged.append(name)
    if errors:
        raise DeployError(
            "refusing to deploy; these changes cannot be applied in place (drop the data source first):\n"
            + "\n".join(errors)
        )
    _plan_pipes(client, plan, pipes, set(existing) | set(parsed))
    return plan


def _scope_text(scope: dict[str, str]) -> str:
    return ":".join(part for part in (scope["type"], scope.get("resource"), scope.get("filter")) if part)


def _grant(client: Client, token_name: str, scope: str) -> bool:
    """Make sure the token holds the scope; True when something changed."""
    try:
        current = client.json("GET", f"/v0/tokens/{token_name}")
    except ClientError as exc:
        if exc.status != 404:
            raise
        client.json("POST", "/v0/tokens", params={"name": token_name, "scope": scope})
        return True
    scopes = [_scope_text(s) for s in current["scopes"] if s["type"] not in INTERNAL_SCOPES]
    if scope in scopes:
        return False
    client.json("PUT", f"/v0/tokens/{token_name}", data={"scope": [*scopes, scope]})
    return True


def apply_plan(client: Client, plan: Plan) -> list[str]:
    """Apply; returns one line per action. Rolls back creates on failure."""
    done: list[str] = []
    created: list[str] = []
    created_pipes: list[str] = []
    replaced: list[tuple[str, str]] = []
    try:
        for name, datafile in plan.create:
            client.json(
                "POST",
                "/v0/datasources",
                data={
                    "name": name,
                    "mode": "create",
                    "schema": ", ".join(c.schema_sql() for c in datafile.columns),
                    "description": datafile.description or "",
                    "tags": ", ".join(datafile.tags),
                    **_engine_params(datafile.engine),
                },
            )
            created.append(name)
            done.append(f"created {name}")
        for name, datafile in plan.update:
            client.json(
                "PUT",
                f"/v0/datasources/{name}",
                data={"description": datafile.description or "", "tags": ", ".join(datafile.tags)},
            )
            done.append(f"updated {name}")
        for name, datafile in plan.datafiles.items():
            for token_name, permission in datafile.tokens:
                if _grant(client, token_name, f"DATASOURCES:{permission}:{name}"):
                    done.append(f"token {token_name}: {permission} on {name}")
        for name, text in plan.create_pipes:
            _post_pipe(client, name, text, replace=False)
            created_pipes.append(name)
            done.append(f"created pipe {name}")
        for name, text, previous in plan.replace_pipes:
            _post_pipe(client, name, text, replace=True)
            replaced.append((name, previous))
            done.append(f"replaced pipe {name}")
    except ClientError as exc:
        for name in reversed(created_pipes):
            try:
                client.request("DELETE", f"/v0/pipes/{name}")
            except ClientError:
                done.append(f"could not roll back pipe {name}")
        for name, previous in reversed(replaced):
            try:
                _post_pipe(client, name, previous, replace=True)
            except ClientError:
                done.append(f"could not restore pipe {name}")
        for name in reversed(created):
            try:
                client.request("DELETE", f"/v0/datasources/{name}")
            except ClientError:
                done.append(f"could not roll back {name}")
        raise DeployError(f"deploy failed and was rolled back: {exc.message}") from None
    done.extend(f"unchanged {name}" for name in plan.unchanged)
    done.extend(f"unchanged pipe {name}" for name in plan.unchanged_pipes)
    return done


def _post_pipe(client: Client, name: str, text: str, *, replace: bool) -> None:
    params = {"name": name, **({"force": "true"} if replace else {})}
    client.json(
        "POST", "/v0/pipes", params=params, content=text.encode(), headers={"Content-Type": "text/plain; charset=utf-8"}
    )
