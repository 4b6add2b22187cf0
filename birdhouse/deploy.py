"""``birdhouse deploy DIR``: apply ``.datasource`` files to a running server.

Plan first, then apply. The plan reads every file and the server's current
state and refuses the whole deploy if any file is invalid or asks for a
change birdhouse cannot make in place (a different column list or engine):
nothing is half-applied. Creates made during apply are rolled back if a
later step fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdhouse.client import Client, ClientError
from birdhouse.schema.columns import parse_schema
from birdhouse.schema.datafile import DatafileError, DatasourceFile, parse_datasource_file
from birdhouse.schema.engine import EngineSpec

INTERNAL_SCOPES = ("ADMIN_USER", "USER")


class DeployError(Exception):
    """The deploy was refused or failed; nothing (more) was applied."""


@dataclass
class Plan:
    create: list[tuple[str, DatasourceFile]] = field(default_factory=list)
    update: list[tuple[str, DatasourceFile]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


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


def plan_deploy(client: Client, directory: Path) -> Plan:
    files = sorted(directory.rglob("*.datasource"))
    if not files:
        raise DeployError(f"no .datasource files under {directory}")
    parsed: dict[str, DatasourceFile] = {}
    errors: list[str] = []
    for path in files:
        try:
            parsed[path.stem] = parse_datasource_file(path.read_text())
        except (DatafileError, ValueError) as exc:
            errors.append(f"{path}: {exc}")
    if errors:
        raise DeployError("\n".join(errors))
    existing = {d["name"]: d for d in client.json("GET", "/v0/datasources")["datasources"]}
    plan = Plan(skipped=[str(p) for p in sorted(directory.rglob("*.pipe"))])
    for name, datafile in parsed.items():
        if name not in existing:
            plan.create.append((name, datafile))
            continue
        errors.extend(_differences(name, datafile, existing[name]))
        current = existing[name]
        if (
            (datafile.description or "") != current.get("description", "")
            or datafile.tokens
            or (list(datafile.tags) != list(current.get("tags") or []))
        ):
            plan.update.append((name, datafile))
        else:
            plan.unchanged.append(name)
    if errors:
        raise DeployError(
            "refusing to deploy; these changes cannot be applied in place (drop the data source first):\n"
            + "\n".join(errors)
        )
    return plan


def _scope_text(scope: dict[str, str]) -> str:
    return ":".join(part for part in (scope["type"], scope.get("resource"), scope.get("filter")) if part)


def _grant(client: Client, token_name: str, scope: str) -> None:
    try:
        current = client.json("GET", f"/v0/tokens/{token_name}")
    except ClientError as exc:
        if exc.status != 404:
            raise
        client.json("POST", "/v0/tokens", params={"name": token_name, "scope": scope})
        return
    scopes = [_scope_text(s) for s in current["scopes"] if s["type"] not in INTERNAL_SCOPES]
    if scope not in scopes:
        client.json("PUT", f"/v0/tokens/{token_name}", data={"scope": [*scopes, scope]})


def apply_plan(client: Client, plan: Plan) -> list[str]:
    """Apply; returns one line per action. Rolls back creates on failure."""
    done: list[str] = []
    created: list[str] = []
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
        for name, datafile in [*plan.create, *plan.update]:
            for token_name, permission in datafile.tokens:
                _grant(client, token_name, f"DATASOURCES:{permission}:{name}")
                done.append(f"token {token_name}: {permission} on {name}")
    except ClientError as exc:
        for name in reversed(created):
            try:
                client.request("DELETE", f"/v0/datasources/{name}")
            except ClientError:
                done.append(f"could not roll back {name}")
        raise DeployError(f"deploy failed and was rolled back: {exc.message}") from None
    done.extend(f"unchanged {name}" for name in plan.unchanged)
    done.extend(f"skipped {path} (pipes are not supported yet)" for path in plan.skipped)
    return done
