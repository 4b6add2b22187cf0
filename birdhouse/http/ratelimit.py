"""Rate limits for /v0/events (SPEC §3, §2.3): token buckets per workspace,
optionally per data source, and an optional bytes/s bucket per workspace.

A bucket holds ``burst`` tokens and refills at ``rate`` per second; a request
costs one token (the bytes bucket: its wire bytes). The headers are what the
real clients need: all three ``X-RateLimit-*`` together or none, base-10
integers, ``Remaining`` 0 on every 429, and an integer ``Retry-After`` ≥ 1
(tinybird-python-sdk ``int()``s them; the OpenTelemetry exporter ``Atoi``s).
Limits are per node (documented).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self, cost: float, now: float) -> Decision:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        allowed = cost <= self.tokens
        if allowed:
            self.tokens -= cost
        missing = max(0.0, min(cost, self.burst) - self.tokens)
        return Decision(
            allowed=allowed,
            limit=int(self.burst),
            remaining=0 if not allowed else int(self.tokens),
            reset_s=math.ceil((self.burst - self.tokens) / self.rate),
            retry_after_s=max(1, math.ceil(missing / self.rate)),
        )


class RateLimiter:
    """Buckets by key, created on first use. Thread-safe and cheap: one dict
    lookup and a few float operations per request."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst or rate
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, cost: float = 1.0, rate: float | None = None, burst: float | None = None) -> Decision:
        """Take ``cost`` from ``key``'s bucket; ``rate``/``burst`` override the
        defaults for this key (per-workspace limits set through the API)."""
        if rate is None:
            rate, burst = self.rate, self.burst
        else:
            burst = burst or rate
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or bucket.rate != rate or bucket.burst != burst:
                bucket = self._buckets[key] = TokenBucket(rate, burst)
            return bucket.take(cost, time.monotonic())


def tighter(first: Decision | None, second: Decision | None) -> Decision | None:
    """The decision whose bucket has fewer tokens left (SPEC §2.3); a refusal wins."""
    if first is None or second is None:
        return first or second
    if first.allowed != second.allowed:
        return first if not first.allowed else second
    return first if first.remaining <= second.remaining else second
