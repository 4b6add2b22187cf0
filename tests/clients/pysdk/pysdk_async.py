"""tinybird-python-sdk `AsyncDatasource` (aiohttp), run inside the SDK's own virtualenv.

Usage: python pysdk_async.py '{"url": …, "token": …, "ds": …, "append_token": …}'
Prints one JSON object a line: {"step": …, "ok": true|false, …}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tb.a.api import AsyncAPI  # type: ignore[import-not-found]
from tb.a.datasource import AsyncBuffer, AsyncDatasource  # type: ignore[import-not-found]


def report(step: str, **fields: Any) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


def row(scenario: str, n: int) -> dict[str, Any]:
    return {"scenario": scenario, "n": n, "at": "2025-06-12T10:15:30.5Z", "tags": {"async": "yes"}}


async def main() -> None:
    config = json.loads(sys.argv[1])
    url, token, name = config["url"], config["token"], config["ds"]

    # AsyncAPI.initialize() checks the token with GET /v0/datasources and calls sys.exit on a 403: an
    # append-only token must pass it (SPEC §7.3).
    api = AsyncAPI(config["append_token"], url)
    await api.initialize()
    await api.close()
    report("initialize", ok=True)

    # The async context manager with an explicit flush(). In 0.3.7 close() alone sends nothing (it sets _shutdown
    # before flushing, and flush() returns early when shut down), and the timer task cancels itself inside
    # AsyncBuffer.flush(): explicit flush() is the path that delivers rows.
    async with AsyncDatasource(name, token, api_url=url) as ds:
        for n in range(6):
            await ds.append(row("async_context", n))
        await ds.flush()
    report("async_context", ok=True)

    # A second batch through `<<` on a long-lived datasource, flushed explicitly.
    ds = AsyncDatasource(name, token, api_url=url, buffer=AsyncBuffer(max_wait_seconds=30))
    for n in range(4):
        await (ds << row("async_shift", n))
    await ds.flush()
    await ds.close()
    report("async_shift", ok=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as exc:
        report("error", ok=False, error=f"{type(exc).__name__}: {exc}")
        raise
