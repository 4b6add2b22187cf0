"""A conversion worker process (``python -m birdhouse.schema.worker``).

The server runs its event loop, the WAL hand-off and the flusher under one GIL;
converting a large body there (or in a thread, which holds the same GIL) takes
CPU the loop needs. A worker process converts on another core: it runs the very
same :class:`~birdhouse.schema.convert.Converter`, so the outcome is identical.

Frames on stdin / stdout, little-endian:

- request: ``REQUEST`` header (id, details flag, key, spec and body lengths),
  then the key, the spec (a pickled ``(columns, options)``, read only when the
  key is new to this process) and the body;
- reply: ``REPLY`` header (id, ok flag, payload length), then the pickled
  :class:`~birdhouse.schema.convert.Converted` (ok) or the error's text.

The first reply, id 0 with no payload, says the worker is ready. The worker
exits when stdin closes, which is also what happens when the server dies.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from typing import Any, BinaryIO

from birdhouse.schema.convert import Converter

REQUEST = struct.Struct("<QBHII")
REPLY = struct.Struct("<QBI")
READY = 0
# Compiled converters kept per process (one per data source schema version).
MAX_CONVERTERS = 256


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def build(spec: bytes) -> Converter:
    columns, options = pickle.loads(spec)  # noqa: S301 - written by the parent server, never by a client
    return Converter(columns, **options)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    converters: dict[bytes, Converter] = {}
    replies.write(REPLY.pack(READY, 1, 0))
    replies.flush()
    while True:
        header = _read_exact(requests, REQUEST.size)
        if header is None:
            return
        request_id, details, key_size, spec_size, body_size = REQUEST.unpack(header)
        key = _read_exact(requests, key_size) if key_size else b""
        spec = _read_exact(requests, spec_size) if spec_size else b""
        body = _read_exact(requests, body_size) if body_size else b""
        if key is None or spec is None or body is None:
            return
        try:
            converter = converters.get(key)
            if converter is None:
                if len(converters) >= MAX_CONVERTERS:
                    del converters[next(iter(converters))]
                converter = converters[key] = build(spec)
            payload = pickle.dumps(converter.convert(body, details=bool(details)), protocol=5)
            ok = 1
        except Exception as exc:  # reported to the parent, which converts in-process instead
            payload = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
            ok = 0
        replies.write(REPLY.pack(request_id, ok, len(payload)))
        replies.write(payload)
        replies.flush()


def main() -> None:
    # Ctrl-C reaches the whole process group; the worker ends with its parent (stdin EOF) instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies: Any = os.fdopen(os.dup(1), "wb")
    # Anything printed by accident must not corrupt the frames.
    os.dup2(2, 1)
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
