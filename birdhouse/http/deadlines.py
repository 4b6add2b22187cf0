"""Coarse deadlines for request-body reads.

``asyncio.timeout`` costs a ``Timeout`` object, a timer-heap entry and two
``current_task()`` lookups per use: about a tenth of a small event request's
time on the event loop. A body-read deadline is tens of seconds and needs no
precision, so a read registers its task here (one dict write) and one sweeper
per event loop cancels the overdue ones every ``TICK_S``.

A cancellation this module caused is recognisable (:meth:`Deadlines.expired`),
so the reader turns it into a 408 and ``uncancel``\\ s the task; any other
cancellation passes through untouched.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Final

__all__ = ["TICK_S", "Deadlines", "deadlines"]

TICK_S: Final = 0.25


class Deadlines:
    """Overdue tasks of one event loop get cancelled, at most ``TICK_S`` late."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def enter(self, timeout_s: float) -> asyncio.Task[object]:
        """Register the running task; it is cancelled once ``timeout_s`` has passed."""
        task = asyncio.current_task(self._loop)
        assert task is not None, "deadlines apply to tasks"
        self._due[task] = self._loop.time() + timeout_s
        if self._sweeper is None:
            self._sweeper = self._loop.create_task(self._sweep())
        return task

    def leave(self, task: asyncio.Task[object]) -> None:
        self._due.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """True when this module cancelled ``task`` (it then still has to ``uncancel``)."""
        return task in self._expired

    @property
    def pending(self) -> int:
        return len(self._due)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self._loop.time()
            overdue = [task for task, due in self._due.items() if due <= now and task not in self._expired]
            for task in overdue:
                self._expired.add(task)
                task.cancel()


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = weakref.WeakKeyDictionary()


def deadlines() -> Deadlines:
    """The running loop's registry (tests run several loops, one per client)."""
    loop = asyncio.get_running_loop()
    found = _by_loop.get(loop)
    if found is None:
        found = _by_loop[loop] = Deadlines(loop)
    return found
