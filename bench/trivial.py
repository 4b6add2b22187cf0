"""The reference for small requests: an ASGI endpoint that reads the whole body and answers 202 with a
body the size of birdhouse's, served by granian (same HTTP server, same settings as birdhouse).

``python -m bench.trivial PORT`` serves it on 127.0.0.1:PORT with one worker.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BODY = b'{"successful_rows":1,"quarantined_rows":0}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
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

    Granian(
        "bench.trivial:app", address="127.0.0.1", port=int(sys.argv[1]), interface=Interfaces.ASGI, workers=1
    ).serve()


if __name__ == "__main__":
    main()
