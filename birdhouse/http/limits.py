"""Admission control for /v0/events: rate limits and concurrency slots.

One object per node (:class:`EventLimits`, kept on the runtime). Everything
that refuses a request here refuses it before the body is read or stored:
429 for rate limits (SPEC E19), 503 for slots and the in-flight cap (E20).
"""

from __future__ import annotations

import asyncio

from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.config import EventsSettings, Settings
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
        if not workspace.limits:  # the common case, on every event request
            return float(limiter.rate), float(limiter.burst)
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

    def slot(self, workspace: Workspace, target: str, large: bool) -> Slot:
        """Step 8: large bodies share a few slots per (workspace, data source)."""
        return Slot(self, (workspace.id, target), large)

    def semaphore(self, key: tuple[str, str]) -> asyncio.Semaphore:
        semaphore = self._slots.get(key)
        if semaphore is None:
            semaphore = self._slots[key] = asyncio.Semaphore(self.settings.events.slots_per_datasource)
        return semaphore


def _busy(events: EventsSettings) -> Refused:
    """E20's 503; the handler supplies the text."""
    return Refused(503, "", {"Retry-After": str(events.retry_after_503_s)})


class Slot:
    """``async with limits.slot(...)``: counts the request in flight (503 past
    ``events.max_inflight_requests``) and, for a large body, holds one of its
    data source's slots (503 after ``events.slot_wait_ms``). A class rather
    than an ``asynccontextmanager``: that costs a generator and its frames on
    every event request."""

    __slots__ = ("_key", "_large", "_limits", "_semaphore")

    def __init__(self, limits: EventLimits, key: tuple[str, str], large: bool) -> None:
        self._limits = limits
        self._key = key
        self._large = large
        self._semaphore: asyncio.Semaphore | None = None

    async def __aenter__(self) -> None:
        limits = self._limits
        events = limits.settings.events
        if limits.inflight >= events.max_inflight_requests:
            raise _busy(events)
        limits.inflight += 1
        if not self._large:
            return
        semaphore = limits.semaphore(self._key)
        try:
            await asyncio.wait_for(semaphore.acquire(), events.slot_wait_ms / 1000)
        except TimeoutError:
            limits.inflight -= 1
            raise _busy(events) from None
        except BaseException:
            limits.inflight -= 1
            raise
        self._semaphore = semaphore

    async def __aexit__(self, *exc: object) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
        self._limits.inflight -= 1
