"""The WAL payload: one accepted request's converted rows.

A record is everything the flusher needs without the request: which table
(by workspace and data source *id*, so a record survives a restart), the
column list of the landing rows, the rows themselves as JSONEachRow bytes,
the quarantine rows, and the request id that names the record's dedup tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec


class AcceptedBatch(msgspec.Struct, array_like=True, frozen=True):
    request_id: str
    workspace_id: str
    datasource_id: str
    columns: tuple[str, ...]
    rows: bytes
    quarantine: bytes
    successful_rows: int
    quarantined_rows: int
    # Set when the client sent an Idempotency-Key (or body-hash dedup is on).
    dedup_key: str = ""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AcceptedBatch)


def encode_batch(batch: AcceptedBatch) -> bytes:
    return _encoder.encode(batch)


def decode_batch(payload: bytes) -> AcceptedBatch:
    return _decoder.decode(payload)


def quarantine_token(request_id: str) -> str:
    """One request's quarantine block: inserted right after acceptance *and*
    by the flush, so both use this token and the second is a no-op."""
    return f"{request_id}-q"


def landing_token(batches: Iterable[AcceptedBatch]) -> str:
    """A flush group's landing block. Derived from the request ids it holds,
    so a replay of the same segment after a crash yields the same token (the
    engine drops it as a duplicate) while no two different groups share one."""
    digest = hashlib.sha256()
    for batch in batches:
        digest.update(batch.request_id.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:40] + "-l"
