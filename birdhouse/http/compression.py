"""Request bodies: wire cap, Content-Encoding, capped decompression (SPEC §1.6).

The wire body is read up to ``max_wire`` bytes (more → 413 before anything
is decoded). Decompression then runs in bounded steps, so a small bomb never
allocates more than ``max_decompressed`` plus one step: the cap is checked
as output is produced, not after.
"""

from __future__ import annotations

import asyncio
import zlib

import zstandard
from starlette.types import Receive

from birdhouse.http.deadlines import Deadlines, deadlines

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Output produced per decompression step; bounds memory past the cap.
STEP = 1 << 20


class BodyError(Exception):
    """The body cannot be used. ``status`` is 400, 413 or 415."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def encoding_of(header: str | None) -> str:
    """Normalise Content-Encoding to identity|gzip|zstd|deflate, else raise 415."""
    value = (header or "").strip().lower()
    if value in ("", "identity"):
        return "identity"
    if "," not in value and "gzip" in value:
        return "gzip"
    if value == "zstd":
        return "zstd"
    if value == "deflate":
        return "deflate"
    raise BodyError(415, f"Unsupported Content-Encoding '{(header or '').strip()[:100]}'")


async def read_wire(receive: Receive, max_wire: int, timeout_s: float | None = None) -> bytes:
    """The whole wire body, at most ``max_wire`` bytes, within ``timeout_s``
    (a slow-body client holds a slot and memory; it gets 408, nothing stored).

    Reads the ASGI messages itself: Starlette's ``Request.stream`` generator
    and ``asyncio.timeout`` were a sixth of a small request's event-loop time."""
    parts: list[bytes] = []
    size = 0
    registry: Deadlines | None = None
    task: asyncio.Task[object] | None = None
    if timeout_s is not None:
        registry = deadlines()
        task = registry.enter(timeout_s)
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "http.request":
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > max_wire:
                        raise BodyError(413, f"Request Entity Too Large: body exceeds {max_wire} bytes")
                    parts.append(chunk)
                if not message.get("more_body", False):
                    break
            elif kind == "http.disconnect":
                # Nobody is left to read the answer; 400 keeps it a client error in logs
                # and metrics (SPEC §1.4: a disconnect before acceptance stores nothing).
                raise BodyError(400, "The client closed the connection before the body was complete")
    except asyncio.CancelledError:
        if task is None or registry is None or not registry.expired(task):
            raise
        task.uncancel()
        raise BodyError(408, f"Request Timeout: the body did not arrive within {timeout_s:g} s") from None
    finally:
        if task is not None and registry is not None:
            registry.leave(task)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _too_big(limit: int) -> BodyError:
    return BodyError(413, f"Request Entity Too Large: decompressed body exceeds {limit} bytes")


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """zlib/gzip/raw deflate with concatenated gzip members, output capped."""
    out = bytearray()
    pending = data
    while pending:
        engine = zlib.decompressobj(wbits)
        while pending:
            out += engine.decompress(pending, STEP)
            if len(out) > limit:
                raise _too_big(limit)
            pending = engine.unconsumed_tail
            if engine.eof:
                break
        if not engine.eof:
            raise zlib.error("truncated stream")
        pending = engine.unused_data
        # Only gzip allows several members; trailing bytes elsewhere are corruption.
        if pending and wbits != 31:
            raise zlib.error("trailing data after the stream")
    return bytes(out)


def _check_zstd_frames(data: bytes) -> None:
    """Walk zstd frame and block headers (RFC 8878 §3.1) without decompressing.

    The streaming reader stops quietly at a truncated frame; walking the
    headers proves every frame is complete and nothing trails them, at a cost
    of a few bytes read per 128 KiB block."""
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 8:
            raise zstandard.ZstdError("truncated frame header")
        magic = int.from_bytes(data[pos : pos + 4], "little")
        if 0x184D2A50 <= magic <= 0x184D2A5F:  # skippable frame
            pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
            continue
        if data[pos : pos + 4] != ZSTD_MAGIC:
            raise zstandard.ZstdError("not a zstd frame")
        descriptor = data[pos + 4]
        fcs_flag, single, checksum, dict_flag = (
            descriptor >> 6,
            descriptor >> 5 & 1,
            descriptor >> 2 & 1,
            descriptor & 3,
        )
        fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
        pos += 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag] + fcs_size
        while True:
            if pos + 3 > end:
                raise zstandard.ZstdError("truncated block header")
            header = int.from_bytes(data[pos : pos + 3], "little")
            last, kind, size = header & 1, header >> 1 & 3, header >> 3
            if kind == 3:
                raise zstandard.ZstdError("reserved block type")
            pos += 3 + (1 if kind == 1 else size)
            if last:
                break
        pos += 4 if checksum else 0
        if pos > end:
            raise zstandard.ZstdError("truncated frame")


def _unzstd(data: bytes, limit: int) -> bytes:
    _check_zstd_frames(data)
    out = bytearray()
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    while True:
        chunk = reader.read(STEP)
        if not chunk:
            break
        out += chunk
        if len(out) > limit:
            raise _too_big(limit)
    return bytes(out)


def decode(body: bytes, encoding: str, limit: int) -> bytes:
    """Decompress ``body`` per ``encoding``; gzip and zstd are also sniffed by
    magic bytes when no encoding was declared (SPEC §1.6)."""
    if encoding == "identity":
        if body.startswith(GZIP_MAGIC):
            encoding = "gzip"
        elif body.startswith(ZSTD_MAGIC):
            encoding = "zstd"
        else:
            if len(body) > limit:
                raise _too_big(limit)
            return body
    if not body:
        return b""
    try:
        if encoding == "gzip":
            return _inflate(body, 31, limit)
        if encoding == "zstd":
            return _unzstd(body, limit)
        try:
            return _inflate(body, 15, limit)
        except zlib.error:
            return _inflate(body, -15, limit)  # raw deflate (MAY)
    except (zlib.error, zstandard.ZstdError) as exc:
        raise BodyError(400, f"Invalid {encoding} body") from exc
