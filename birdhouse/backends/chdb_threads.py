"""Background merges of the embedded engine yield the CPU to ingestion.

chDB runs inside the server's process, so its background merges compete for the
same cores as the event loop that accepts events. Under sustained load on a
small machine a merge can take a core for seconds and every request queues
behind it (p99 in the seconds during a soak at 80 % of the maximum). Merges are
deferrable work: raising the nice value of the engine's merge threads lets the
scheduler give the request path the CPU first, and merges run in what is left.
They are slowed, never stopped (a nice-10 thread still gets about a tenth of a
contended core), and if they fall behind, the engine's own too-many-parts delay
slows inserts, the WAL grows and admission control answers 503: backpressure,
not loss.

Linux only (per-thread nice through ``setpriority`` on a thread id); elsewhere
this does nothing. Threads the engine starts later are caught by calling
:meth:`MergeNice.apply` again; it rescans at most every ``RESCAN_S``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("birdhouse.chdb")

# Thread names (``/proc/self/task/*/comm``) of the engine's background merge and move pools.
BACKGROUND_PREFIXES = ("MergeMutate", "Move")
RESCAN_S = 5.0


class MergeNice:
    def __init__(self, nice: int, tasks: Path = Path("/proc/self/task")) -> None:
        self.nice = nice
        self._tasks = tasks
        self._done: set[int] = set()
        self._next = 0.0

    def apply(self) -> int:
        """Renice background threads not seen yet; returns how many were changed."""
        if self.nice <= 0 or not hasattr(os, "setpriority"):
            return 0
        now = time.monotonic()
        if now < self._next:
            return 0
        self._next = now + RESCAN_S
        changed = 0
        try:
            entries = list(self._tasks.iterdir())
        except OSError:
            return 0
        alive = {int(e.name) for e in entries if e.name.isdigit()}
        self._done &= alive  # a thread id can be reused by a new thread
        for tid in alive - self._done:
            entry = self._tasks / str(tid)
            with contextlib.suppress(OSError):
                name = (entry / "comm").read_text().strip()
                if name.startswith(BACKGROUND_PREFIXES):
                    os.setpriority(os.PRIO_PROCESS, tid, self.nice)
                    self._done.add(tid)
                    changed += 1
        if changed:
            log.debug("background merge threads at nice %d: %d more", self.nice, changed)
        return changed
