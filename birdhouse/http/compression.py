"""Request bodies: wire cap, Content-Encoding, capped decompression (SPEC §1.6).

The wire body is read up to ``max_wire`` bytes (more → 413 before anything
is decoded). Decompression then runs in bounded steps, so a small bomb never
allocates more than ``max_decompressed`` plus one step: the cap is checked
as output is produced, not after.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import zstandard

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


async def read_wire(stream: AsyncIterator[bytes], max_wire: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > max_wire:
            raise BodyError(413, f"Request Entity Too Large: body exceeds {max_wire} bytes")
        parts.append(chunk)
    return b"".join(parts)


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


def _unzstd(data: bytes, limit: int) -> bytes:
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
