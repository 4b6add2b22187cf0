"""tinybird-python-sdk's logging handler and the LiteLLM handler's request, run inside the SDK's own virtualenv.

`TinybirdLoggingHandler` is used as is. The LiteLLM handler needs `litellm` (not installed: it is large), so its
row — built the way tb/litellm/handler.py builds it (`safe_json_dumps`, isoformat datetimes, nested messages) — is
sent through the SDK's own `tb.api.API.send("events?name=litellm", data=…)`, exactly as the handler does.

Usage: python pysdk_handlers.py '{"url": …, "token": …}'
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta
from typing import Any

from tb.api import API  # type: ignore[import-not-found]
from tb.logger import TinybirdLoggingHandler  # type: ignore[import-not-found]


def report(step: str, **fields: Any) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


def main() -> None:
    config = json.loads(sys.argv[1])
    url, token = config["url"], config["token"]

    logger = logging.getLogger("birdhouse.clients")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(TinybirdLoggingHandler(token, url, "client-tests"))
    logger.info("order %s created for %d items", "ord_8f2k1", 3)
    logger.warning("disk almost full", extra={"disk": {"mount": "/var", "free_pct": 4.5}})
    report("logging", ok=True)

    start = datetime(2025, 6, 12, 10, 15, 30, 123456)
    data = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": 'Say "hi" in 2 languages\nplease'},
        ],
        "user": None,
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(seconds=1.5)).isoformat(),
        "id": "0f3c2a1e-litellm-call",
        "stream": False,
        "call_type": "completion",
        "provider": "openai",
        "response_headers": {},
        "cache_hit": False,
        "proxy_metadata": {},
        "response": {"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "hi / hola"}}]},
        "cost": 0.000021,
        "exception": None,
        "traceback": None,
        "duration": 1.5,
    }
    response = API(token, url).send("events?name=litellm", data=json.dumps(data))
    report("litellm", ok=True, status=response.status_code, body=response.text)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:
        report("error", ok=False, error=f"{type(exc).__name__}: {exc}")
        raise
