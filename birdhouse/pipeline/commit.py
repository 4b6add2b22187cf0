"""Group commit for the event loop.

Requests append their record to the WAL on the loop thread (a small pwrite
into the page cache) and await one shared ``fdatasync``: a single worker
thread syncs for every record written before it started, and the next sync
starts as soon as it returns if more records are waiting. Compared with one
blocking ``append_sync`` per request in a thread pool, this costs one thread
hop per fsync instead of per request, and no request holds a thread while it
waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from birdhouse.wal import Ticket, Wal, WalError

T = TypeVar("T")

# Payloads this large are written from a worker thread: a multi-megabyte
# pwrite would stall every other request on the loop.
INLINE_WRITE_BYTES = 256 * 1024


class AsyncCommitter:
    def __init__(self, wal: Wal) -> None:
        self.wal = wal
        self._waiting: list[tuple[Ticket, asyncio.Future[None]]] = []
        self._syncing = False
        self.syncs = 0
        # Its own threads, not anyio's pool: a hop through anyio's limiter and
        # backend detection costs more on the loop than the write it hands off.
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wal-commit")

    async def _off_loop(self, fn: Callable[..., T], *args: object) -> T:
        # Copied context: log lines written there still carry the request id.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._threads, context.run, fn, *args)

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    async def append(self, payload: bytes) -> Ticket:
        """Append and return once the record is durable (per ``wal.fsync``).
        Raises WalError when it cannot be, and then nothing was acknowledged."""
        if len(payload) > INLINE_WRITE_BYTES:
            ticket = await self._off_loop(self.wal.append, payload)
        else:
            ticket = self.wal.append(payload)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((ticket, done))
        if not self._syncing:
            self._syncing = True
            asyncio.create_task(self._sync_waiting())  # noqa: RUF006 - it ends once nobody waits
        await done
        return ticket

    async def _sync_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    # Syncing the newest ticket makes every earlier one durable too:
                    # one fdatasync covers the file, and rotation synced older segments.
                    await self._off_loop(self.wal.sync, max(ticket for ticket, _ in batch))
                    self.syncs += 1
                except WalError:
                    # Some of these may still be durable: ask for each, so only the
                    # records that really are lost are refused.
                    for ticket, done in batch:
                        try:
                            await self._off_loop(self.wal.sync, ticket)
                        except WalError as exc:
                            done.set_exception(exc)
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
                    continue
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._syncing = False
