"""tinybird-python-sdk against a rate-limited birdhouse (1 request/s, burst 1), inside the SDK's own virtualenv.

The sync `Datasource` loops on 429 and sleeps only when X-RateLimit-Remaining is 0 (SPEC §11): with birdhouse's
headers it must sleep, retry and land its rows. `AsyncDatasource` tries once (backoff max_tries=1) and raises
RateLimitError. Both must end; the test runs this under a timeout and counts the POSTs.

Usage: python pysdk_ratelimited.py '{"url": …, "token": …, "ds": …, "mode": "sync"|"async"}'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from tb.a.api import RateLimitError  # type: ignore[import-not-found]
from tb.a.datasource import AsyncDatasource  # type: ignore[import-not-found]
from tb.datasource import Datasource  # type: ignore[import-not-found]


def report(step: str, **fields: Any) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


def exhaust(url: str, token: str, name: str) -> int:
    """Spend the bucket's only token so the SDK's next request meets a 429."""
    request = urllib.request.Request(  # noqa: S310 (the test passes an http:// loopback URL)
        f"{url}/v0/events?name={name}", data=b"", headers={"Authorization": f"Bearer {token}"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status: int = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status


def row(scenario: str, n: int) -> dict[str, Any]:
    return {"scenario": scenario, "n": n, "at": "2025-06-12 10:15:30.000"}


def sync(url: str, token: str, name: str) -> None:
    ds = Datasource(name, token, api_url=url)
    for n in range(3):
        ds << row("ratelimited_sync", n)
    status = exhaust(url, token, name)
    started = time.monotonic()
    ds.buffer.flush()
    api = ds.api
    report(
        "sync",
        ok=True,
        exhaust_status=status,
        seconds=round(time.monotonic() - started, 2),
        limit=api.rate_limit_points,
        remaining=api.rate_limit_remaining,
        reset=api.rate_limit_reset,
        retry_after=api.retry_after,
    )


async def asynchronous(url: str, token: str, name: str) -> None:
    ds = AsyncDatasource(name, token, api_url=url)
    for n in range(3):
        await ds.append(row("ratelimited_async", n))
    status = exhaust(url, token, name)
    try:
        await ds.flush()
    except RateLimitError:
        api = ds.api
        report(
            "async",
            ok=True,
            outcome="RateLimitError",
            exhaust_status=status,
            limit=api.rate_limit_points,
            remaining=api.rate_limit_remaining,
            reset=api.rate_limit_reset,
            retry_after=api.retry_after,
        )
    else:
        report("async", ok=True, outcome="flushed", exhaust_status=status)
    finally:
        await ds.api.close()


def main() -> None:
    config = json.loads(sys.argv[1])
    url, token, name = config["url"], config["token"], config["ds"]
    if config["mode"] == "sync":
        sync(url, token, name)
    else:
        asyncio.run(asynchronous(url, token, name))


if __name__ == "__main__":
    try:
        main()
    except BaseException as exc:
        report("error", ok=False, error=f"{type(exc).__name__}: {exc}")
        raise
