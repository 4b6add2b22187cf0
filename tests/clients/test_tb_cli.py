"""PyPI `tinybird` CLI (`tb`) 4.6.13 and 5.0.3, each in its own virtualenv, against birdhouse (SPEC §11 [CLI4]
[CLI5], §10.3, §10.4).

`tb --host URL --token T …` only uses that host with `--cloud`: without it the CLI targets Tinybird Local at
TB_LOCAL_HOST:TB_LOCAL_PORT (default localhost:7181), so every run here also points those at the proxy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.clients.proxy import RecordingProxy
from tests.clients.support import (
    CLI4,
    CLI5,
    HERE,
    auth,
    broke,
    json_lines,
    output_of,
    run,
    venv_bin,
    wait_for_flushed_rows,
)
from tests.server import LocalServer

pytestmark = pytest.mark.usefixtures("clients")

VERSIONS = {"cli4": CLI4, "cli5": CLI5}


def tb(
    venv: str, proxy: RecordingProxy, tmp_path: Path, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `tb` from an empty project folder with a private HOME; `token` adds --cloud --host/--token."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    port = str(urlsplit(proxy.url).port)
    env = {
        "HOME": str(tmp_path / "home"),
        "TB_VERSION_WARNING": "0",
        "TB_LOCAL_HOST": "127.0.0.1",
        "TB_LOCAL_PORT": port,
        "NO_COLOR": "1",
        # Telemetry goes to birdhouse too (GET /v0/regions has no telemetry_token, so tb disables it), never out.
        "TB_CLI_TELEMETRY_HOST": proxy.url,
    }
    target = ["--cloud", "--host", proxy.url, "--token", token] if token else []
    return run([venv_bin(venv, "tb"), *target, *args], timeout=120, env=env, cwd=project)


def seed(server: LocalServer, who: str, count: int) -> None:
    """Rows the CLI reads back, committed with wait=true."""
    body = "\n".join(json.dumps({"at": "2025-06-12 10:00:00", "who": who, "n": n}) for n in range(count))
    response = httpx.post(
        f"{server.url}/v0/events",
        params={"name": "cli_events", "wait": "true"},
        content=body,
        headers=auth(server.admin),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_cli4_datasource_append_events(server: LocalServer, proxy: RecordingProxy, tmp_path: Path) -> None:
    events = "\n".join(json.dumps({"at": "2025-06-12 10:00:00", "who": "cli4_append", "n": n}) for n in range(2))
    result = tb("cli4", proxy, tmp_path, "datasource", "append", "cli_events", "--events", events, token=server.admin)
    command = "tb datasource append cli_events --events"
    assert result.returncode == 0, broke(CLI4, f"`{command}` failed", proxy, output_of(result))
    assert "2 rows appended!" in result.stdout, broke(CLI4, f"`{command}` output", proxy, output_of(result))
    posts = proxy.recorded("POST", "/v0/events")
    assert len(posts) == 1 and posts[0].query == {"name": ["cli_events"], "from": ["cli"]}, broke(
        CLI4, "the events request", proxy
    )
    assert posts[0].header("Content-Type") is None and posts[0].body == events.encode(), broke(
        CLI4, "the events body is sent as typed, without Content-Type", proxy
    )
    found = wait_for_flushed_rows(
        server, "SELECT n FROM cli_events WHERE who = 'cli4_append' ORDER BY n", lambda r: len(r) == 2
    )
    assert found == [{"n": 0}, {"n": 1}], broke(CLI4, f"rows in cli_events: {found}", proxy)


def test_cli4_quarantine_read_path(server: LocalServer, proxy: RecordingProxy, tmp_path: Path) -> None:
    bad = json.dumps({"at": "not a date", "who": "cli4_quarantine", "n": 1})
    result = tb("cli4", proxy, tmp_path, "datasource", "append", "cli_events", "--events", bad, token=server.admin)
    assert result.returncode == 0, broke(CLI4, "`tb datasource append --events <bad row>`", proxy, output_of(result))
    assert "1 row went to quarantine" in result.stdout, broke(CLI4, "quarantine count", proxy, output_of(result))
    # It then reads the newest quarantined row right away and prints it.
    reads = proxy.recorded("GET", "/v0/sql")
    assert reads and "cli_events_quarantine" in reads[0].query["q"][0], broke(CLI4, "quarantine read", proxy)
    assert reads[0].status == 200 and json.loads(reads[0].response_body)["data"], broke(
        CLI4, "GET /v0/sql on the quarantine returned no row right after the response", proxy
    )
    assert "c__error" in result.stdout and "cli4_quarantine" in result.stdout, broke(
        CLI4, "the quarantined row is not shown", proxy, output_of(result)
    )


# 5.0.3 goes on when GET /v1/workspace fails; 4.6.13 stops.


@pytest.mark.parametrize("venv", ["cli4", "cli5"])
def test_sql(server: LocalServer, proxy: RecordingProxy, tmp_path: Path, venv: str) -> None:
    seed(server, f"{venv}_sql", 3)
    query = f"SELECT who, count() AS c FROM cli_events WHERE who = '{venv}_sql' GROUP BY who"
    result = tb(venv, proxy, tmp_path, "sql", query, token=server.admin)
    assert result.returncode == 0, broke(VERSIONS[venv], f"`tb sql {query!r}` failed", proxy, output_of(result))
    assert f"{venv}_sql" in result.stdout and "3" in result.stdout, broke(
        VERSIONS[venv], "`tb sql` output", proxy, output_of(result)
    )
    sql_calls = proxy.recorded(route="/v0/sql")
    assert sql_calls and all(e.status == 200 for e in sql_calls), broke(VERSIONS[venv], "/v0/sql", proxy)


@pytest.mark.parametrize("venv", ["cli4", "cli5"])
def test_datasource_ls(server: LocalServer, proxy: RecordingProxy, tmp_path: Path, venv: str) -> None:
    seed(server, f"{venv}_ls", 1)
    result = tb(venv, proxy, tmp_path, "datasource", "ls", token=server.admin)
    assert result.returncode == 0, broke(VERSIONS[venv], "`tb datasource ls` failed", proxy, output_of(result))
    for name in ("analytics_events", "cli_events", "traces"):
        assert f"name: {name}" in result.stdout, broke(VERSIONS[venv], f"{name} not listed", proxy, output_of(result))


def test_cli5_datasource_append_events(server: LocalServer, proxy: RecordingProxy, tmp_path: Path) -> None:
    events = "\n".join(json.dumps({"at": "2025-06-12 10:00:00", "who": "cli5_append", "n": n}) for n in range(2))
    result = tb("cli5", proxy, tmp_path, "datasource", "append", "cli_events", "--events", events, token=server.admin)
    assert result.returncode == 0, broke(CLI5, "`tb datasource append --events`", proxy, output_of(result))
    appends = proxy.recorded("POST", "/v1/datasources/cli_events/append")
    assert appends and appends[0].header("Content-Type") == "application/x-ndjson", broke(CLI5, "append", proxy)
    job = json.loads(appends[0].response_body)
    assert isinstance(job.get("id") or job.get("import_id"), str), broke(CLI5, "append answer has no job id", proxy)
    found = wait_for_flushed_rows(
        server, "SELECT n FROM cli_events WHERE who = 'cli5_append' ORDER BY n", lambda r: len(r) == 2
    )
    assert found == [{"n": 0}, {"n": 1}], broke(CLI5, f"rows in cli_events: {found}", proxy)


@pytest.mark.parametrize("venv", ["cli4", "cli5"])
def test_local_detection(server: LocalServer, proxy: RecordingProxy, venv: str) -> None:
    """GET /tokens (three keys) and GET /v0/health, through the CLI's own functions."""
    port = str(urlsplit(proxy.url).port)
    result = run(
        [venv_bin(venv, "python"), HERE / "tbcli" / "tbcli_local_health.py"],
        timeout=60,
        env={"TB_LOCAL_HOST": "127.0.0.1", "TB_LOCAL_PORT": port},
    )
    found = json_lines(result.stdout)
    assert result.returncode == 0 and found, broke(VERSIONS[venv], "local checks crashed", proxy, output_of(result))
    report = found[-1]
    assert report["tokens"] == ["admin_token", "user_token", "workspace_admin_token"], broke(
        VERSIONS[venv], f"GET /tokens keys: {report}", proxy
    )
    assert report["checked"] and report["health_error"] is None, broke(
        VERSIONS[venv], f"check_endpoints_health: {report}", proxy, output_of(result)
    )
    assert proxy.recorded("GET", "/v0/health")[0].status == 200, broke(VERSIONS[venv], "GET /v0/health", proxy)


@pytest.mark.parametrize("venv", ["cli4", "cli5"])
def test_local_mode_commands(server: LocalServer, proxy: RecordingProxy, tmp_path: Path, venv: str) -> None:
    """No --host/--token: tb finds birdhouse as Tinybird Local and builds in its own workspace."""
    for attempt in (1, 2):
        result = tb(venv, proxy, tmp_path, "datasource", "ls")
        assert result.returncode == 0, broke(
            VERSIONS[venv], f"local-mode `tb datasource ls` (run {attempt})", proxy, output_of(result)
        )
    result = tb(venv, proxy, tmp_path, "sql", "SELECT 1 AS one")
    assert result.returncode == 0 and "one" in result.stdout, broke(
        VERSIONS[venv], "local-mode `tb sql`", proxy, output_of(result)
    )
