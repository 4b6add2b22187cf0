"""The CLI against a real `birdhouse local` process (granian + chDB)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from birdhouse.cli import main
from tests.server import LocalServer

# The web analytics starter kit's datafile, as the client tests deploy it.
ANALYTICS = (Path(__file__).resolve().parents[1] / "clients" / "datafiles" / "analytics_events.datasource").read_text()


def run(server: LocalServer, *args: str, token: str | None = None) -> tuple[int, str]:
    extra = ["--host", server.url] + (["--token", token] if token else [])
    result = CliRunner().invoke(main, [*args, *extra])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["local"],
        ["serve"],
        ["deploy"],
        ["token"],
        ["token", "create"],
        ["datasource"],
        ["sql"],
        ["workspace"],
        ["append"],
        ["deadletter"],
        ["deadletter", "replay"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    # The help says what the command does, not only its options.
    assert len(result.output.split("Options:")[0].strip().splitlines()) >= 2


def test_server_answers_health_and_tokens(server: LocalServer) -> None:
    assert httpx.get(f"{server.url}/v0/health").json() == {"status": "ok"}
    assert set(server.tokens) == {"user_token", "admin_token", "workspace_admin_token"}


def test_deploy_datasource_ls_sql_token_flow(server: LocalServer, tmp_path: Path) -> None:
    project = tmp_path / "project" / "datasources"
    project.mkdir(parents=True)
    (project / "analytics_events.datasource").write_text(ANALYTICS)
    code, output = run(server, "deploy", str(tmp_path / "project"))
    assert code == 0, output
    assert "created analytics_events" in output
    assert "token tracker: APPEND on analytics_events" in output
    # Deploying again changes nothing and stays successful.
    code, output = run(server, "deploy", str(tmp_path / "project"))
    assert code == 0, output
    assert "created" not in output
    assert "unchanged analytics_events" in output and "token tracker" not in output
    tokens = httpx.get(f"{server.url}/v0/tokens", headers={"Authorization": f"Bearer {server.admin}"}).json()
    tracker = next(t for t in tokens["tokens"] if t["name"] == "tracker")
    assert tracker["scopes"] == [{"type": "DATASOURCES:APPEND", "resource": "analytics_events"}]

    code, output = run(server, "datasource", "ls")
    assert code == 0 and "analytics_events" in output

    code, output = run(server, "sql", "SELECT count() AS n FROM analytics_events", "--format", "json")
    assert code == 0, output
    assert json.loads(output)["data"] == [{"n": 0}]
    code, output = run(server, "sql", "SELECT 1 AS one, 'x' AS letter")
    assert code == 0 and "one" in output and "letter" in output

    code, output = run(server, "token", "create", "reader", "--scope", "DATASOURCES:READ:analytics_events")
    assert code == 0, output
    reader = output.strip().splitlines()[-1]
    assert reader.startswith("p.")
    code, output = run(server, "sql", "SELECT count() FROM analytics_events", "--format", "csv", token=reader)
    assert code == 0 and output.strip().splitlines()[-1] == "0"
    code, output = run(server, "token", "ls")
    assert code == 0 and "reader" in output
    code, output = run(server, "token", "rm", "reader")
    assert code == 0
    code, output = run(server, "sql", "SELECT 1", token=reader)
    assert code == 1 and "Invalid token" in output

    code, output = run(server, "datasource", "truncate", "analytics_events")
    assert code == 0
    code, output = run(server, "datasource", "rm", "analytics_events")
    assert code == 0
    code, output = run(server, "datasource", "ls")
    assert "analytics_events" not in output


def test_deploy_refuses_incompatible_change_and_bad_files(server: LocalServer, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "kept.datasource").write_text("SCHEMA >\n    a Int32 `json:$.a`\n")
    code, output = run(server, "deploy", str(project))
    assert code == 0, output
    # Changing a column type and adding a new file in the same deploy: refused whole.
    (project / "kept.datasource").write_text("SCHEMA >\n    a Int64 `json:$.a`\n")
    (project / "fresh.datasource").write_text("SCHEMA >\n    b String `json:$.b`\n")
    code, output = run(server, "deploy", str(project))
    assert code == 1
    assert "kept" in output and "Int64" in output
    listed = httpx.get(f"{server.url}/v0/datasources", headers={"Authorization": f"Bearer {server.admin}"}).json()
    assert "fresh" not in [d["name"] for d in listed["datasources"]]
    # A file with an unsupported keyword: refused, naming the keyword.
    (project / "kept.datasource").write_text("SCHEMA >\n    a Int32 `json:$.a`\n")
    (project / "fresh.datasource").write_text("KAFKA_TOPIC x\nSCHEMA >\n    b String `json:$.b`\n")
    code, output = run(server, "deploy", str(project))
    assert code == 1 and "KAFKA_TOPIC" in output


def test_workspace_commands(server: LocalServer) -> None:
    code, output = run(server, "workspace", "create", "cli_ws")
    assert code == 0, output
    token = output.strip().splitlines()[-1]
    assert token.startswith("p.")
    code, output = run(server, "workspace", "ls")
    assert code == 0 and "cli_ws" in output
    code, output = run(server, "workspace", "rm", "cli_ws")
    assert code == 0, output
    code, output = run(server, "workspace", "ls")
    assert "cli_ws" not in output


def test_client_commands_fail_clearly_without_server() -> None:
    result = CliRunner().invoke(main, ["datasource", "ls", "--host", "http://127.0.0.1:9", "--token", "x"])
    assert result.exit_code == 1
    assert "cannot reach" in result.output
