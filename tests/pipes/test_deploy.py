"""`birdhouse deploy DIR` with data sources and pipes: data sources first, then pipes; all or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from birdhouse.client import Client
from birdhouse.deploy import DeployError, apply_plan, plan_deploy
from tests.apps import Local
from tests.pipes.conftest import post_events, sql

EVENTS = """
TOKEN "tracker" APPEND
SCHEMA >
    `timestamp` DateTime `json:$.timestamp`,
    `kind` String `json:$.kind`,
    `user_id` String `json:$.user_id`
"""
DAILY = """
SCHEMA >
    `day` Date,
    `kind` String,
    `hits` AggregateFunction(count),
    `users` AggregateFunction(uniq, String)
ENGINE "AggregatingMergeTree"
ENGINE_SORTING_KEY "day, kind"
"""
DAILY_MV = """
NODE daily
SQL >
    SELECT toDate(timestamp) AS day, kind, countState() AS hits, uniqState(user_id) AS users
    FROM events GROUP BY day, kind
TYPE MATERIALIZED
DATASOURCE daily
"""
DAILY_API = """
TOKEN "dashboard" READ

NODE merged
SQL >
    %
    SELECT day, kind, countMerge(hits) AS hits, uniqMerge(users) AS users FROM daily
    WHERE kind = {{String(kind, 'view')}}
    GROUP BY day, kind ORDER BY day
TYPE ENDPOINT
"""


def deploy_client(local: Local) -> Client:
    client = Client("http://testserver", local.admin)
    client._http = cast(Any, local.client)  # the in-process app instead of a socket
    return client


def write(project: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def deploy(local: Local, project: Path) -> list[str]:
    client = deploy_client(local)
    return apply_plan(client, plan_deploy(client, project))


def test_deploy_project_with_datasources_and_pipes(app: Local, tmp_path: Path) -> None:
    files = {
        "datasources/events.datasource": EVENTS,
        "datasources/daily.datasource": DAILY,
        "materializations/daily_mv.pipe": DAILY_MV,
        "endpoints/daily_api.pipe": DAILY_API,
    }
    write(tmp_path, files)
    done = deploy(app, tmp_path)
    assert "created daily" in done and "created events" in done
    assert "created pipe daily_mv" in done and "created pipe daily_api" in done
    post_events(
        app,
        "events",
        [
            json.dumps({"timestamp": f"2024-01-0{1 + i % 2} 10:00:00", "kind": "view", "user_id": f"u{i % 3}"})
            for i in range(10)
        ],
    )
    tokens = {t["name"]: t["token"] for t in app.client.get("/v0/tokens", headers=app.auth()).json()["tokens"]}
    response = app.client.get("/v0/pipes/daily_api.json", headers=app.auth(tokens["dashboard"]))
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [
        {"day": "2024-01-01", "kind": "view", "hits": 5, "users": 3},
        {"day": "2024-01-02", "kind": "view", "hits": 5, "users": 3},
    ]
    # Deploying again changes nothing.
    again = deploy(app, tmp_path)
    assert not [line for line in again if line.startswith(("created", "replaced"))]
    assert "unchanged pipe daily_mv" in again
    # A changed pipe is replaced.
    write(tmp_path, {"endpoints/daily_api.pipe": DAILY_API.replace("'view'", "'click'")})
    assert "replaced pipe daily_api" in deploy(app, tmp_path)
    assert app.client.get("/v0/pipes/daily_api.json", headers=app.auth()).json()["data"] == []


def test_invalid_pipe_refuses_the_whole_deploy(app: Local, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "events.datasource": EVENTS,
            "bad.pipe": "NODE n\nSQL >\n    SELECT 1\nKAFKA_TOPIC x\n",
        },
    )
    with pytest.raises(DeployError, match="KAFKA_TOPIC"):
        deploy(app, tmp_path)
    write(tmp_path, {"bad.pipe": DAILY_MV})  # its target is neither in the project nor deployed
    with pytest.raises(DeployError, match="daily"):
        deploy(app, tmp_path)
    listed = app.client.get("/v0/datasources", headers=app.auth()).json()["datasources"]
    assert listed == []


def test_pipe_rejected_by_the_server_rolls_back(app: Local, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "events.datasource": EVENTS,
            "daily.datasource": DAILY,
            # Parses, but the SELECT does not match the target's columns: refused at apply.
            "daily_mv.pipe": DAILY_MV.replace("countState() AS hits", "count() AS hits"),
        },
    )
    with pytest.raises(DeployError, match="rolled back"):
        deploy(app, tmp_path)
    assert app.client.get("/v0/datasources", headers=app.auth()).json()["datasources"] == []
    assert app.client.get("/v0/pipes", headers=app.auth()).json()["pipes"] == []
    assert sql(app, "SELECT 1 AS one") == [{"one": 1}]
