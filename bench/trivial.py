"""The references for small requests, served by granian (same HTTP server, same settings as birdhouse):

- ``/v0/events``: an ASGI endpoint that reads the whole body and answers 202 with a body the size of
  birdhouse's (the issue's "trivial ASGI endpoint");
- ``/durable/v0/events``: the same, but the body is first appended to a write-ahead log with
  birdhouse's own WAL and group commit (``birdhouse.wal.Wal``, ``AsyncCommitter``, fsync on) and the
  answer waits for its fdatasync. It is what birdhouse's durability before the answer costs on this
  machine with no other work at all: the ceiling for birdhouse's small requests ("durable floor").

``python -m bench.trivial PORT WAL_DIR`` serves both on 127.0.0.1:PORT with one worker.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from birdhouse.pipeline.commit import AsyncCommitter
from birdhouse.wal import Wal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BODY = b'{"successful_rows":1,"quarantined_rows":0}'
DURABLE_PREFIX = "/durable"

# The worker process granian spawns finds the WAL directory here.
WAL_ENV = "BENCH_TRIVIAL_WAL"

_committer: AsyncCommitter | None = None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _committer
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _committer = AsyncCommitter(Wal(Path(os.environ[WAL_ENV]), fsync="always"))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _committer is not None:
                    _committer.close()
                    _committer.wal.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    durable = scope["path"].startswith(DURABLE_PREFIX)
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if durable:
            chunks.append(chunk)
        more = message.get("more_body", False)
    if durable:
        assert _committer is not None
        await _committer.append(b"".join(chunks))
    status = 200 if scope["path"] == "/v0/health" else 202
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces

    os.environ[WAL_ENV] = sys.argv[2]
    Granian(
        "bench.trivial:app", address="127.0.0.1", port=int(sys.argv[1]), interface=Interfaces.ASGI, workers=1
    ).serve()


if __name__ == "__main__":
    main()
