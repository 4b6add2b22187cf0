"""The tb CLI's own Tinybird Local checks, run inside a CLI virtualenv against birdhouse.

`get_local_tokens()` is how every local-mode command gets its tokens (GET /tokens); `check_endpoints_health()` is
the loop `tb local start` keeps running (GET /tokens, its three keys, GET /v0/health). Only the Docker parts are
stubbed: `container_stats` (it reads a container's memory/CPU) and the container objects themselves.

Usage: TB_LOCAL_HOST=127.0.0.1 TB_LOCAL_PORT=<port> python tbcli_local_health.py
Prints one JSON object: {"tokens": [keys…], "health_error": <str or null>, "checked": bool}.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tinybird.tb.modules import local_common  # type: ignore[import-not-found]


def main() -> None:
    tokens = local_common.get_local_tokens()
    checked = threading.Event()
    stop = threading.Event()

    def stats(container: Any, client: Any) -> str:
        # Called after a round of checks passed: one round is enough.
        checked.set()
        stop.set()
        return "stubbed"

    local_common.container_stats = stats
    ready = threading.Event()
    ready.set()
    health: dict[str, str] = {}
    thread = threading.Thread(
        target=local_common.check_endpoints_health, args=(None, None, ready, stop, health), daemon=True
    )
    thread.start()
    thread.join(timeout=30)
    print(json.dumps({"tokens": sorted(tokens), "health_error": health.get("error"), "checked": checked.is_set()}))


if __name__ == "__main__":
    main()
