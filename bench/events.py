"""Event shapes and pre-generated request bodies.

Two shapes: ``flat`` (six scalar columns) and ``web`` (the flock.js
web-analytics event: ISO timestamp, action, version, session_id, tenant_id,
domain and a nested ``payload`` object stored as JSON text). Bodies are built
once, before any load runs, so the load generator only copies bytes.
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from dataclasses import dataclass

import zstandard

SHAPES = ("flat", "web")


@dataclass(frozen=True)
class Shape:
    name: str
    # birdhouse schema (POST /v0/datasources `schema`), with json paths.
    schema: str
    # The same columns as a ClickHouse table body (for ClickHouse server and chDB).
    columns_sql: str


FLAT = Shape(
    "flat",
    "timestamp DateTime `json:$.timestamp`, user_id UInt64 `json:$.user_id`, event String `json:$.event`, "
    "value Float64 `json:$.value`, country String `json:$.country`, ok UInt8 `json:$.ok`",
    "timestamp DateTime, user_id UInt64, event String, value Float64, country String, ok UInt8",
)
WEB = Shape(
    "web",
    "timestamp DateTime `json:$.timestamp`, action String `json:$.action`, version String `json:$.version`, "
    "session_id String `json:$.session_id`, tenant_id String `json:$.tenant_id`, domain String `json:$.domain`, "
    "payload String `json:$.payload`",
    "timestamp DateTime, action String, version String, session_id String, tenant_id String, domain String, "
    "payload String",
)
BY_NAME = {"flat": FLAT, "web": WEB}

_EVENTS = ("click", "view", "purchase", "signup", "scroll")
_COUNTRIES = ("ES", "US", "DE", "FR", "BR", "IN", "JP")
_PATHS = ("/", "/pricing", "/blog/ingest-fast", "/docs/events-api", "/about")
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Version/17.4 Mobile Safari/604.1",
)


def flat_event(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "timestamp": f"2024-05-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}",
        "user_id": rng.randrange(1, 10**9),
        "event": rng.choice(_EVENTS),
        "value": round(rng.random() * 100, 3),
        "country": rng.choice(_COUNTRIES),
        "ok": i % 2,
    }


def web_event(rng: random.Random, i: int) -> dict[str, object]:
    path = rng.choice(_PATHS)
    return {
        "timestamp": f"2024-05-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z",
        "action": "page_hit",
        "version": "1",
        "session_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "tenant_id": "",
        "domain": "example.com",
        "payload": {
            "user-agent": rng.choice(_AGENTS),
            "locale": "en-US",
            "location": rng.choice(_COUNTRIES),
            "referrer": "https://news.ycombinator.com/",
            "pathname": path,
            "href": f"https://example.com{path}",
        },
    }


def events(shape: str, count: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    make = flat_event if shape == "flat" else web_event
    return [make(rng, seed * 100_003 + i) for i in range(count)]


def ndjson(rows: list[dict[str, object]], payload_as_string: bool = False) -> bytes:
    """NDJSON bytes. ``payload_as_string`` encodes the nested payload as JSON text: ClickHouse 18.16's
    JSONEachRow cannot read an object into a String column, so its reference gets the payload pre-encoded."""
    lines = []
    for row in rows:
        if payload_as_string and isinstance(row.get("payload"), dict):
            row = {**row, "payload": json.dumps(row["payload"], separators=(",", ":"))}
        lines.append(json.dumps(row, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def bodies(shape: str, rows_per_body: int, count: int, payload_as_string: bool = False) -> list[bytes]:
    """``count`` distinct bodies of ``rows_per_body`` events each (distinct so no cache or dedup can help)."""
    return [ndjson(events(shape, rows_per_body, seed), payload_as_string) for seed in range(count)]


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, compresslevel=6)
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(body)
    if encoding == "identity":
        return body
    raise ValueError(f"unknown encoding {encoding!r}")
