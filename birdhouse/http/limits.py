"""Admission control for /v0/events: rate limits and concurrency slots.

One object per node (:class:`EventLimits`, kept on the runtime). Everything
that refuses a request here refuses it before the body is read or stored:
429 for rate limits (SPEC E19), 503 for slots and the in-flight cap (E20).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.config import Settings
from birdhouse.http.ratelimit import Decision, RateLimiter, tighter

MB = 1_000_000


class Refused(Exception):
    """Admission refused: ``status`` 429 or 503, with the headers to send."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class EventLimits:
    def __init__(self, settings: Settings) -> None:
        limits = settings.limits
        self.settings = settings
        self.requests = RateLimiter(limits.workspace_rps, limits.workspace_burst)
        self.per_datasource = RateLimiter(limits.datasource_rps, limits.datasource_burst)
        self.bytes = RateLimiter(limits.workspace_mbps * MB, limits.workspace_mbps * MB)
        self._slots: dict[tuple[str, str], asyncio.Semaphore] = {}
        self.inflight = 0
        self.rejected = 0

    def _override(self, workspace: Workspace, key: str, default: float) -> float:
        return float(workspace.limits.get(key, default))

    def _rate(self, workspace: Workspace, scope: str, limiter: RateLimiter) -> tuple[float, float]:
        """The (rate, burst) in force: workspace overrides, else the node defaults.
        An overridden rate without a burst gets a burst of one second's worth."""
        rate = self._override(workspace, f"{scope}_rps", limiter.rate)
        default_burst = limiter.burst if rate == limiter.rate else rate
        return rate, self._override(workspace, f"{scope}_burst", default_burst)

    def workspace(self, workspace: Workspace) -> Decision | None:
        """Step 4 of SPEC §1.4. Raises Refused(429); returns the decision for headers."""
        rate, burst = self._rate(workspace, "workspace", self.requests)
        if rate <= 0:
            return None
        return self._check(self.requests.take(workspace.id, 1, rate, burst))

    def datasource(self, workspace: Workspace, datasource: DataSource, current: Decision | None) -> Decision | None:
        """Step 6: the optional per data source bucket."""
        rate, burst = self._rate(workspace, "datasource", self.per_datasource)
        if rate <= 0:
            return current
        decision = self.per_datasource.take(f"{workspace.id}/{datasource.id}", 1, rate, burst)
        return self._check(tighter(current, decision))

    def jwt(self, token_id: str, rps: float, current: Decision | None) -> Decision | None:
        """A JWT's own ``limits.rps`` bucket (SPEC §7.6)."""
        return self._check(tighter(current, self.requests.take(token_id, 1, rps, rps)))

    def wire_bytes(self, workspace: Workspace, size: int, current: Decision | None) -> None:
        """The optional bytes/s bucket (``--events-mbps``), charged wire bytes."""
        mbps = self._override(workspace, "workspace_mbps", self.bytes.rate / MB)
        if mbps <= 0 or size <= 0:
            return
        capacity = mbps * MB
        decision = self.bytes.take(workspace.id, min(size, capacity), capacity, capacity)
        if not decision.allowed:
            self.rejected += 1
            headers = current.headers() if current else {}
            headers.update({"X-RateLimit-Remaining": "0", "Retry-After": str(decision.retry_after_s)})
            raise Refused(429, "Too many requests", headers)

    def _check(self, decision: Decision | None) -> Decision | None:
        if decision is not None and not decision.allowed:
            self.rejected += 1
            raise Refused(429, "Too many requests", decision.headers())
        return decision

    @contextlib.asynccontextmanager
    async def slot(self, workspace: Workspace, target: str, large: bool) -> AsyncIterator[None]:
        """Step 8: large bodies share a few slots per (workspace, data source)."""
        events = self.settings.events
        unavailable = {"Retry-After": str(events.retry_after_503_s)}
        if self.inflight >= events.max_inflight_requests:
            raise Refused(503, "", unavailable)
        self.inflight += 1
        try:
            if not large:
                yield
                return
            key = (workspace.id, target)
            semaphore = self._slots.get(key)
            if semaphore is None:
                semaphore = self._slots[key] = asyncio.Semaphore(events.slots_per_datasource)
            try:
                await asyncio.wait_for(semaphore.acquire(), events.slot_wait_ms / 1000)
            except TimeoutError:
                raise Refused(503, "", unavailable) from None
            try:
                yield
            finally:
                semaphore.release()
        finally:
            self.inflight -= 1
