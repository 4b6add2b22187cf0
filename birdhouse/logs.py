"""Logging: plain text or one JSON object per line (``--log-format json``),
each record carrying the request id of the request it belongs to.

The request id comes from a context variable set by the HTTP middleware, so
log calls anywhere below a request (routes, the catalog, worker threads run
through ``run_in_threadpool``, which copies the context) carry it without
passing it around. Token strings are never logged by birdhouse code.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import sys

import msgspec

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("birdhouse_request_id", default="")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid
        record.request_tag = f"[{rid}] " if rid else ""  # text lines outside requests get no empty []
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            entry["request_id"] = rid
        for key in ("method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(request_tag)s%(message)s"


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the ``birdhouse`` logger tree (idempotent)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logger = logging.getLogger("birdhouse")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
