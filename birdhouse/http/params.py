"""Request parameters from the query string, a form body or a JSON body.

Tinybird's clients send the same parameters in all three places (the tb CLI
puts them in the query string, others post forms or JSON); the query string
wins, as everywhere in the API (SPEC §1.2: first occurrence wins).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request

from birdhouse.http.errors import ApiError


class Params:
    def __init__(self, query: dict[str, list[str]], body: dict[str, list[str]]) -> None:
        self._query = query
        self._body = body

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self.getlist(key)
        return values[0] if values else default

    def getlist(self, key: str) -> list[str]:
        return self._query.get(key) or self._body.get(key) or []

    def flag(self, key: str) -> bool:
        return (self.get(key) or "").strip().lower() == "true"


def _listify(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    if value is None:
        return []
    return [value if isinstance(value, str) else msgspec.json.encode(value).decode()]


async def capped_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``max_bytes`` (never read whole first)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"Request body exceeds {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def read_params(request: Request, max_body_bytes: int = 1 << 20) -> Params:
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    body: dict[str, list[str]] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        raw = await capped_body(request, max_body_bytes)
        for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            body.setdefault(key, []).append(value)
    elif content_type == "multipart/form-data":
        async with request.form(max_part_size=max_body_bytes) as form:
            for key, item in form.multi_items():
                if isinstance(item, str):
                    body.setdefault(key, []).append(item)
    elif content_type == "application/json":
        raw = await capped_body(request, max_body_bytes)
        if raw.strip():
            try:
                decoded = msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                raise ApiError(400, f"Invalid JSON body: {exc}") from None
            if not isinstance(decoded, dict):
                raise ApiError(400, "The JSON body must be an object")
            body = {key: _listify(value) for key, value in decoded.items()}
    return Params(query, body)


DATA_FIELDS = ("csv", "ndjson", "parquet")
DATA_TYPES = {
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/vnd.apache.parquet": "parquet",
}


async def read_params_and_data(request: Request, max_bytes: int) -> tuple[Params, bytes | None, str | None]:
    """Parameters plus an uploaded body (SPEC §10.1): a multipart field
    ``csv``/``ndjson``/``parquet``, or a raw body whose Content-Type names a
    data format. Returns (params, data, format the upload suggests)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in DATA_TYPES:
        raw = await request.body()
        if len(raw) > max_bytes:
            raise ApiError(413, f"Request body exceeds {max_bytes} bytes")
        return await read_params(request), raw, DATA_TYPES[content_type]
    if content_type != "multipart/form-data":
        return await read_params(request), None, None
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    body: dict[str, list[str]] = {}
    data: bytes | None = None
    kind: str | None = None
    async with request.form(max_part_size=max_bytes) as form:
        for key, item in form.multi_items():
            if isinstance(item, str):
                body.setdefault(key, []).append(item)
            elif key in DATA_FIELDS and data is None:
                data, kind = await item.read(), key
                if len(data) > max_bytes:
                    raise ApiError(413, f"Request body exceeds {max_bytes} bytes")
    return Params(query, body), data, kind
