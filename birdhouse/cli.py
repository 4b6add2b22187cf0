"""The ``birdhouse`` command line.

``local`` and ``serve`` run a server; every other command is a client of a
running server's HTTP API (default: the local one and its admin token).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from birdhouse.client import Client, ClientError
from birdhouse.config import ConfigError, Settings, load_settings, settings_to_dict

console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(1)


# ------------------------------------------------------------------ servers


def _server_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--host", default=None, help="Address to listen on (default 127.0.0.1)."),
            click.option("--port", type=int, default=None, help="Port to listen on (default 7181)."),
            click.option("--data-dir", default=None, help="Where data, WAL and the token secret live."),
            click.option("--storage", default=None, help="Storage DSN (default: embedded chDB in the data dir)."),
            click.option("--config", "config_file", default=None, help="A TOML settings file."),
            click.option("--tls-cert", default=None, help="TLS certificate (PEM) to serve HTTPS."),
            click.option("--tls-key", default=None, help="TLS private key (PEM)."),
            click.option(
                "--log-format", type=click.Choice(["text", "json"]), default=None, help="Log lines as text or JSON."
            ),
            click.option(
                "--events-rps", type=float, default=None, help="Requests/s per workspace on /v0/events (0 = no limit)."
            ),
            click.option(
                "--events-mbps", type=float, default=None, help="Wire MB/s per workspace on /v0/events (default off)."
            ),
            click.option(
                "--max-connections",
                type=click.IntRange(min=0),
                default=None,
                help="Open client connections per node; past it new ones get 503 or HTTP/2 GOAWAY (0 = no limit).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _settings(options: dict[str, Any]) -> Settings:
    try:
        return load_settings(
            options.get("config_file"),
            overrides={
                "server.host": options.get("host"),
                "server.port": options.get("port"),
                "server.data_dir": options.get("data_dir"),
                "storage.dsn": options.get("storage"),
                "server.log_format": options.get("log_format"),
                "limits.workspace_rps": options.get("events_rps"),
                "limits.workspace_burst": options.get("events_rps"),
                "limits.workspace_mbps": options.get("events_mbps"),
                "server.max_connections": options.get("max_connections"),
            },
        )
    except (ConfigError, OSError) as exc:
        _fail(str(exc))
        raise AssertionError from exc


def _run_server(settings: Settings, local_mode: bool, tls_cert: str | None, tls_key: str | None) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings, HTTP2Settings

    from birdhouse.app import LOCAL_ENV, SETTINGS_ENV

    os.environ[SETTINGS_ENV] = json.dumps(settings_to_dict(settings))
    os.environ[LOCAL_ENV] = "1" if local_mode else "0"
    scheme = "https" if tls_cert else "http"
    limit = settings.server.max_connections
    err_console.print(
        f"birdhouse {'local' if local_mode else 'serve'}: {scheme}://{settings.server.host}:{settings.server.port} "
        f"data in {settings.data_path}" + (f", at most {limit} connections" if limit > 0 else ""),
        highlight=False,
    )
    listen: dict[str, Any] = {
        "address": settings.server.host,
        "port": settings.server.port,
        "ssl_cert": Path(tls_cert) if tls_cert else None,
        "ssl_key": Path(tls_key) if tls_key else None,
    }
    gate = None
    private_dir = None
    if limit > 0:
        from birdhouse.gate import GateConfig
        from birdhouse.gate_process import GateProcess

        # The gate takes the public address (and TLS); granian listens on a
        # socket only this user can reach. A short temp path: sun_path holds 108 bytes.
        private_dir = Path(tempfile.mkdtemp(prefix="birdhouse-"))
        upstream = private_dir / "granian.sock"
        gate = GateProcess(
            GateConfig(
                host=settings.server.host,
                port=settings.server.port,
                upstream=str(upstream),
                max_connections=limit,
                retry_after_s=settings.events.retry_after_503_s,
                tls_cert=tls_cert or "",
                tls_key=tls_key or "",
                drain_s=settings.server.shutdown_grace_s + 5,
                log_level=settings.server.log_level,
                log_format=settings.server.log_format,
            )
        )
        listen = {"uds": upstream, "uds_permissions": 0o600}
    # One worker: the embedded engine owns its data dir for the whole process.
    # The loop is granian's "auto": uvloop (a dependency) when importable.
    server = Granian(
        "birdhouse.app:app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        workers=1,
        log_level=settings.server.log_level,  # type: ignore[arg-type]
        http1_settings=HTTP1Settings(header_read_timeout=settings.server.header_read_timeout_ms),
        http2_settings=HTTP2Settings(max_concurrent_streams=settings.server.http2_max_concurrent_streams),
        backpressure=settings.server.backpressure,
        **listen,
    )
    if gate is None:
        server.serve()
        return
    from birdhouse.gate_process import GateError

    server.on_startup(gate.start)
    server.on_shutdown(gate.stop)
    try:
        server.serve()
    except GateError as exc:
        _fail(str(exc))
    finally:
        gate.stop()
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)
    if gate.failed:
        _fail("the connection gate exited unexpectedly")


@click.group()
def main() -> None:
    """birdhouse: a self-hosted, Tinybird-compatible Events API on ClickHouse."""


@main.command()
@_server_options
def local(**options: Any) -> None:
    """Run a development server like Tinybird Local (port 7181, embedded chDB,
    GET /tokens hands out the admin tokens)."""
    _run_server(_settings(options), True, options.get("tls_cert"), options.get("tls_key"))


@main.command()
@_server_options
def serve(**options: Any) -> None:
    """Run a production server: no GET /tokens; on first start the workspace
    admin token is written to <data-dir>/admin_token (mode 0600)."""
    settings = _settings(options)
    _run_server(settings, False, options.get("tls_cert"), options.get("tls_key"))


# ------------------------------------------------------------------ clients


def _client_options(fn: Any) -> Any:
    fn = click.option("--token", default=None, help="Token (default: $BIRDHOUSE_TOKEN or the local admin token).")(fn)
    return click.option("--host", default=None, help="Server URL (default http://127.0.0.1:7181).")(fn)


def _call(host: str | None, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    with Client(host, token) as client:
        try:
            return client.json(method, path, **kwargs)
        except ClientError as exc:
            _fail(exc.message)


def _table(columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_client_options
def deploy(directory: Path, host: str | None, token: str | None) -> None:
    """Apply every .datasource and .pipe file under DIRECTORY to a running
    server: data sources first, then pipes (materialized views, endpoints);
    create or update; incompatible changes are refused, nothing half-applied."""
    from birdhouse.deploy import DeployError, apply_plan, plan_deploy

    with Client(host, token) as client:
        try:
            for line in apply_plan(client, plan_deploy(client, directory)):
                console.print(line, highlight=False)
        except (DeployError, ClientError) as exc:
            _fail(str(exc))


@main.command()
@click.argument("datasource_name", metavar="DATASOURCE")
@click.argument("files", nargs=-1, required=True)
@click.option("--batch-mb", type=float, default=4.0, show_default=True, help="Batch size in MB (cut at lines).")
@click.option("--workers", type=int, default=4, show_default=True, help="Batches sent in parallel.")
@_client_options
def append(
    datasource_name: str, files: tuple[str, ...], batch_mb: float, workers: int, host: str | None, token: str | None
) -> None:
    """Append NDJSON FILES (plain, .gz, .zst, or - for stdin) to DATASOURCE
    through /v0/events, with a progress bar. Each batch carries an
    Idempotency-Key from its file, offset and content, so retries (and re-runs
    of the same files within the 5 h dedup window) never store a row twice."""
    import httpx
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from birdhouse.append import Sender, input_size, run_append

    with Client(host, token) as client:
        try:
            auth = client.token
        except ClientError as exc:
            _fail(exc.message)
        http = httpx.Client(base_url=client.host, headers={"Authorization": f"Bearer {auth}"}, timeout=120)
    started = time.monotonic()
    rows_done = 0
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with http, Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(datasource_name, total=input_size(list(files)), rate="0")

        def advance(nbytes: int, rows: int) -> None:
            nonlocal rows_done
            rows_done += rows
            rate = rows_done / max(time.monotonic() - started, 1e-6)
            progress.update(task, advance=nbytes, rate=f"{rate:,.0f}")

        summary = run_append(Sender(http, datasource_name), list(files), int(batch_mb * 1_000_000), workers, advance)
    elapsed = time.monotonic() - started
    console.print(
        f"{summary.rows:,} rows appended, {summary.quarantined:,} quarantined, {summary.batches} batches, "
        f"{summary.bytes:,} bytes in {elapsed:.1f}s ({summary.retries} retries)",
        highlight=False,
    )
    for error in summary.errors:
        console.print(f"  quarantined {error}", highlight=False)
    if summary.interrupted:
        err_console.print(f"interrupted: {summary.rows + summary.quarantined:,} rows were stored before stopping")
        sys.exit(130)
    if summary.failed:
        _fail(f"{summary.failed} (after {summary.rows + summary.quarantined:,} rows)")


@main.group()
def token() -> None:
    """List, create and remove tokens of a workspace."""


@token.command("ls")
@_client_options
def token_ls(host: str | None, token: str | None) -> None:
    """List tokens with their scopes."""
    tokens = _call(host, token, "GET", "/v0/tokens")["tokens"]
    _table(
        ["name", "scopes", "token"],
        [
            [
                t["name"],
                ", ".join(":".join(filter(None, [s["type"], s.get("resource")])) for s in t["scopes"]),
                t["token"],
            ]
            for t in tokens
        ],
    )


@token.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True, help="e.g. DATASOURCES:APPEND:events")
@click.option("--description", default="")
@_client_options
def token_create(name: str, scopes: tuple[str, ...], description: str, host: str | None, token: str | None) -> None:
    """Create a token and print it (shown once here; `token ls` shows it again)."""
    created = _call(
        host, token, "POST", "/v0/tokens", params={"name": name, "scope": list(scopes), "description": description}
    )
    click.echo(created["token"])


@token.command("rm")
@click.argument("name")
@_client_options
def token_rm(name: str, host: str | None, token: str | None) -> None:
    """Delete a token; it stops working at once."""
    with Client(host, token) as client:
        try:
            client.request("DELETE", f"/v0/tokens/{name}")
        except ClientError as exc:
            _fail(exc.message)
    console.print(f"deleted token {name}", highlight=False)


@main.group()
def datasource() -> None:
    """List, truncate and remove data sources."""


@datasource.command("ls")
@_client_options
def datasource_ls(host: str | None, token: str | None) -> None:
    """List data sources with row counts and sizes."""
    found = _call(host, token, "GET", "/v0/datasources")["datasources"]
    _table(
        ["name", "rows", "bytes", "engine", "id"],
        [
            [d["name"], d["statistics"]["row_count"], d["statistics"]["bytes"], d["engine"]["engine"], d["id"]]
            for d in found
        ],
    )


@datasource.command("truncate")
@click.argument("name")
@_client_options
def datasource_truncate(name: str, host: str | None, token: str | None) -> None:
    """Delete every row of a data source (the table stays)."""
    _call(host, token, "POST", f"/v0/datasources/{name}/truncate")
    console.print(f"truncated {name}", highlight=False)


@datasource.command("rm")
@click.argument("name")
@_client_options
def datasource_rm(name: str, host: str | None, token: str | None) -> None:
    """Drop a data source, its quarantine table and its scopes."""
    with Client(host, token) as client:
        try:
            client.request("DELETE", f"/v0/datasources/{name}")
        except ClientError as exc:
            _fail(exc.message)
    console.print(f"removed {name}", highlight=False)


@main.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@_client_options
def sql(query: str, fmt: str, host: str | None, token: str | None) -> None:
    """Run a read-only query and render the result."""
    engine_format = {"table": "JSON", "csv": "CSVWithNames", "json": "JSON"}[fmt]
    with Client(host, token) as client:
        try:
            response = client.request("POST", "/v0/sql", content=f"{query}\nFORMAT {engine_format}")
        except ClientError as exc:
            _fail(exc.message)
    if fmt != "table":
        click.echo(response.text, nl=False)
        return
    body = response.json()
    names = [m["name"] for m in body["meta"]]
    _table(names, [[row.get(n) for n in names] for row in body["data"]])


@main.group()
def workspace() -> None:
    """Create, list and remove workspaces (needs the user token)."""


def _user_token(host: str | None, token: str | None) -> str:
    if token:
        return token
    with Client(host) as client:
        response = client._http.get("/tokens")
        if response.status_code != 200:
            _fail("pass --token with the user token")
        return str(response.json()["user_token"])


@workspace.command("ls")
@_client_options
def workspace_ls(host: str | None, token: str | None) -> None:
    """List workspaces."""
    found = _call(host, _user_token(host, token), "GET", "/v1/user/workspaces")["workspaces"]
    _table(["name", "id"], [[w["name"], w["id"]] for w in found])


@workspace.command("create")
@click.argument("name")
@_client_options
def workspace_create(name: str, host: str | None, token: str | None) -> None:
    """Create a workspace and print its admin token."""
    created = _call(host, _user_token(host, token), "POST", "/v1/workspaces", params={"name": name})
    console.print(f"created {created['name']} ({created['id']})", highlight=False)
    click.echo(created["token"])


@workspace.command("rm")
@click.argument("name_or_id")
@_client_options
def workspace_rm(name_or_id: str, host: str | None, token: str | None) -> None:
    """Delete a workspace and all its data."""
    _call(
        host,
        _user_token(host, token),
        "DELETE",
        f"/v1/workspaces/{name_or_id}",
        params={"hard_delete_confirmation": "yes"},
    )
    console.print(f"removed workspace {name_or_id}", highlight=False)


@main.group()
def deadletter() -> None:
    """List and repair rows the database refused (needs the user token)."""


@deadletter.command("ls")
@_client_options
def deadletter_ls(host: str | None, token: str | None) -> None:
    """List dead letters with their error and the views that failed."""
    found = _call(host, _user_token(host, token), "GET", "/v0/deadletter")["letters"]
    _table(
        ["name", "rows", "failed views", "error"],
        [[d["name"], d["rows"], ", ".join(d["failed_views"]), d["error"][:120]] for d in found],
    )


@deadletter.command("replay")
@click.argument("name")
@_client_options
def deadletter_replay(name: str, host: str | None, token: str | None) -> None:
    """Repair one letter: re-run only its failed views, or deliver its rows again."""
    _call(host, _user_token(host, token), "POST", f"/v0/deadletter/{name}/replay")
    console.print(f"repaired {name}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    main()
