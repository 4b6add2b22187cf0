"""tinybird-python-sdk `Datasource` (requests, buffered), run inside the SDK's own virtualenv.

Usage: python pysdk_datasource.py '{"url": …, "token": …, "ds": …}'
Prints one JSON object a line: {"step": …, "ok": true|false, …}. The test then checks the rows in birdhouse.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from tb.datasource import Buffer, Datasource  # type: ignore[import-not-found]


def report(step: str, **fields: Any) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


def row(scenario: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"scenario": scenario, "n": n, "at": "2025-06-12 10:15:30.123", **extra}


def main() -> None:
    config = json.loads(sys.argv[1])
    url, token, name = config["url"], config["token"], config["ds"]

    # 1. The context manager: rows buffered, flushed once on exit (one POST).
    with Datasource(name, token, api_url=url) as ds:
        for n in range(5):
            ds << row("context", n, tags={"k": str(n)})
    report("context", ok=True)

    # 2. `+=`, a str row and a bytes row, then an explicit flush(). Datasource.flush() leaves the buffer's record
    # count alone, so the 1 s timer later POSTs an empty chunk: that empty body must be accepted too.
    ds = Datasource(name, token, api_url=url)
    ds += row("explicit", 0)
    ds.append(json.dumps(row("explicit", 1)))
    ds.append(json.dumps(row("explicit", 2, note="bytes row ✓")).encode())
    ds.flush()
    time.sleep(1.6)
    report("explicit", ok=True)

    # 3. The timer: rows appended and left alone are flushed after max_wait_seconds.
    ds = Datasource(name, token, api_url=url)
    for n in range(3):
        ds << row("timer", n)
    time.sleep(1.6)
    report("timer", ok=True)

    # 4. Record-count flushes: max_wait_records=4 with 10 rows → flushes at 4 and 8, the rest on exit.
    with Datasource(name, token, api_url=url, buffer=Buffer(max_wait_records=4)) as ds:
        for n in range(10):
            ds << row("records", n)
    report("records", ok=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:
        report("error", ok=False, error=f"{type(exc).__name__}: {exc}")
        raise
