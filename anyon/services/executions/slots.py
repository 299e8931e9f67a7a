"""A FIFO limit on concurrently running processes (seed §11: several agents at once can OOM the VM).

Waiters are served strictly in arrival order; a waiter that gives up (its process was stopped while
queued) leaves the queue without consuming a slot.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable


class ExecutionSlots:
    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._running = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self, on_queued: Callable[[int], None] | None = None) -> None:
        """Take a slot, waiting in line when all are busy; ``on_queued(position)`` says it waits."""
        if self._running < self._limit and not self._waiters:
            self._running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if on_queued is not None:
            on_queued(len(self._waiters))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we gave up: pass it on
            else:
                self._discard(waiter)
            raise

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes directly to the next in line
                return
        self._running = max(0, self._running - 1)
