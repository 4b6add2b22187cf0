"""Rate limits and admission control on /v0/events (SPEC §2.3, §3)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from birdhouse.config import load_settings
from birdhouse.http.limits import EventLimits, Refused
from birdhouse.http.ratelimit import TokenBucket
from tests.http.conftest import Local

SCHEMA = "a Int32 `json:$.a`"
HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def post(local: Local, name: str = "events", token: str | None = None, body: bytes = b'{"a":1}') -> Any:
    return local.client.post(f"/v0/events?name={name}", content=body, headers=local.auth(token))


def test_success_carries_integer_ratelimit_headers(local: Local) -> None:
    local.create_datasource("events", SCHEMA)
    response = post(local)
    assert response.status_code == 202
    values = [response.headers[h] for h in HEADERS]
    assert all(v.isdigit() for v in values)
    assert values[0] == "1000"
    assert int(values[1]) <= 999
    assert "retry-after" not in response.headers
    exposed = response.headers["access-control-expose-headers"]
    assert "X-RateLimit-Remaining" in exposed and "Retry-After" in exposed


def test_429_when_the_workspace_bucket_is_empty(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"limits.workspace_rps": 2, "limits.workspace_burst": 3})
    local.create_datasource("events", SCHEMA)
    statuses = [post(local).status_code for _ in range(3)]
    assert statuses == [202, 202, 202]
    limited = post(local)
    assert limited.status_code == 429
    assert limited.text == "Too many requests\n"
    assert limited.headers["x-ratelimit-limit"] == "3"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["x-ratelimit-reset"]) >= 1
    assert limited.headers["retry-after"] == "1"
    # Requests refused before the workspace is known cost nothing and carry no headers.
    forged = post(local, token="garbage")
    assert forged.status_code == 403 and "x-ratelimit-limit" not in forged.headers


def test_no_headers_when_unlimited(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"limits.workspace_rps": 0})
    local.create_datasource("events", SCHEMA)
    response = post(local)
    assert response.status_code == 202
    assert not any(h in response.headers for h in HEADERS)


def test_per_datasource_bucket(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"limits.datasource_rps": 1, "limits.datasource_burst": 2})
    local.create_datasource("events", SCHEMA)
    local.create_datasource("other", SCHEMA)
    assert [post(local).status_code for _ in range(2)] == [202, 202]
    limited = post(local)
    assert limited.status_code == 429 and limited.headers["x-ratelimit-remaining"] == "0"
    assert post(local, "other").status_code == 202
    # The headers describe the bucket with fewer tokens left (the per-DS one).
    assert post(local, "other").headers["x-ratelimit-limit"] == "2"


def test_bytes_bucket(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"limits.workspace_mbps": 0.001})  # 1000 bytes/s
    local.create_datasource("events", SCHEMA)
    body = b'{"a":1}\n' * 100  # 800 bytes
    assert post(local, body=body).status_code == 202
    limited = post(local, body=body)
    assert limited.status_code == 429
    assert limited.headers["retry-after"].isdigit() and limited.headers["x-ratelimit-remaining"] == "0"


def test_per_workspace_limits_through_the_api(local: Local) -> None:
    local.create_datasource("events", SCHEMA)
    ws = local.runtime.default_workspace()
    assert ws is not None
    denied = local.client.put(f"/v1/workspaces/{ws.id}/limits", data={"workspace_rps": "1"}, headers=local.auth())
    assert denied.status_code == 403
    changed = local.client.put(
        f"/v1/workspaces/{ws.id}/limits",
        data={"workspace_rps": "1", "workspace_burst": "1"},
        headers=local.auth(local.user),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["limits"]["workspace_rps"] == 1.0
    assert post(local).status_code == 202
    assert post(local).status_code == 429
    bad = local.client.put(
        f"/v1/workspaces/{ws.id}/limits", data={"workspace_rps": "fast"}, headers=local.auth(local.user)
    )
    assert bad.status_code == 400 and "workspace_rps" in bad.json()["error"]
    reset = local.client.put(
        f"/v1/workspaces/{ws.id}/limits",
        data={"workspace_rps": "", "workspace_burst": ""},
        headers=local.auth(local.user),
    )
    assert reset.json()["overrides"] == {}
    shown = local.client.get(f"/v1/workspaces/{ws.id}/limits", headers=local.auth(local.user)).json()
    assert shown["limits"]["workspace_rps"] == 1000.0


def test_token_bucket_arithmetic() -> None:
    bucket = TokenBucket(rate=10, burst=10)
    now = bucket.updated
    for _ in range(10):
        assert bucket.take(1, now).allowed
    refused = bucket.take(1, now)
    assert not refused.allowed and refused.remaining == 0 and refused.retry_after_s == 1
    assert refused.reset_s == 1
    assert bucket.take(1, now + 0.11).allowed  # one token refilled in 100 ms
    slow = TokenBucket(rate=0.1, burst=1)
    slow.take(1, slow.updated)
    assert slow.take(1, slow.updated).retry_after_s == 10


def test_concurrency_slots_and_inflight_cap() -> None:
    settings = load_settings(
        environ={},
        overrides={
            "events.slots_per_datasource": 1,
            "events.slot_wait_ms": 50,
            "events.max_inflight_requests": 3,
        },
    )
    limits = EventLimits(settings)

    from birdhouse.catalog.models import Workspace

    ws = Workspace(id="w", name="w", database="d")

    async def scenario() -> list[str]:
        outcomes: list[str] = []
        async with limits.slot(ws, "ds", large=True):
            with pytest.raises(Refused) as waited:
                async with limits.slot(ws, "ds", large=True):
                    pass
            outcomes.append(f"{waited.value.status}:{waited.value.headers['Retry-After']}")
            async with limits.slot(ws, "other", large=True):  # another data source has its own slots
                outcomes.append("other ok")
            async with limits.slot(ws, "ds", large=False):  # small bodies need no slot
                outcomes.append("small ok")
                async with limits.slot(ws, "x", large=False):
                    with pytest.raises(Refused) as capped:
                        async with limits.slot(ws, "y", large=False):
                            pass
                    outcomes.append(f"cap {capped.value.status}")
        assert limits.inflight == 0
        return outcomes

    assert asyncio.run(scenario()) == ["503:1", "other ok", "small ok", "cap 503"]


def test_a_request_cancelled_while_waiting_for_a_slot_leaves_nothing_counted() -> None:
    settings = load_settings(environ={}, overrides={"events.slots_per_datasource": 1, "events.slot_wait_ms": 10_000})
    limits = EventLimits(settings)

    from birdhouse.catalog.models import Workspace

    ws = Workspace(id="w", name="w", database="d")

    async def scenario() -> None:
        async with limits.slot(ws, "ds", large=True):
            entered = asyncio.Event()

            async def waiter() -> None:
                entered.set()
                async with limits.slot(ws, "ds", large=True):
                    raise AssertionError("the slot is held")

            task = asyncio.create_task(waiter())
            await entered.wait()
            await asyncio.sleep(0.01)
            assert limits.inflight == 2
            task.cancel()  # e.g. the client went away
            with pytest.raises(asyncio.CancelledError):
                await task
            assert limits.inflight == 1
        assert limits.inflight == 0
        async with limits.slot(ws, "ds", large=True):  # the slot was released
            assert limits.inflight == 1

    asyncio.run(scenario())


def test_events_rps_flag_sets_the_default() -> None:
    from click.testing import CliRunner

    from birdhouse.cli import main

    result = CliRunner().invoke(main, ["local", "--help"])
    assert "--events-rps" in result.output and "--events-mbps" in result.output
