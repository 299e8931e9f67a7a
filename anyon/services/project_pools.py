"""Things made ahead per recently active project: the bookkeeping the warm containers and the ready
worktrees share.

Both keep, per project, a pool that is filled in the background when the project is active; at most
``max_projects`` pools exist (the least recently active one is drained first), a project idle for
``idle_seconds`` or deleted loses its pool, and shutdown drains every pool. What a pool holds, how it is
filled and how it is emptied is the subclass's (:meth:`ProjectPools._fill`, :meth:`ProjectPools._drain`).
Pools are looked up from worker threads (an attempt claims from inside its database transaction), so the
pool table is guarded by a thread lock; everything else runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)


@dataclass
class ProjectPool:
    """What every project's pool keeps besides its contents."""

    last_active: float = field(default_factory=time.monotonic, kw_only=True)
    filling: asyncio.Task[None] | None = field(default=None, kw_only=True)


PoolT = TypeVar("PoolT", bound=ProjectPool)


class ProjectPools(Generic[PoolT]):
    """Per-project pools with a bound on projects, idle reaping and a clean shutdown."""

    #: names the background tasks (``<prefix>:<project id>``, ``<prefix>-reaper``) and the log lines
    task_prefix = "anyon-pool"

    def __init__(
        self,
        *,
        size: int,
        max_projects: int,
        idle_seconds: float,
        project_exists: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.size = size
        self.max_projects = max_projects
        self.idle_seconds = idle_seconds
        self._project_exists = project_exists
        self._pools: dict[str, PoolT] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def filling(self) -> bool:
        """Whether a pool is being filled right now (the benchmarks wait for quiet)."""
        return any(p.filling is not None and not p.filling.done() for p in list(self._pools.values()))

    def _activate(self, project_id: str, fits: Callable[[PoolT], bool], make: Callable[[], PoolT]) -> PoolT:
        """The project is active (on the event loop): its pool, a new one when it has none or the one it
        has no longer ``fits``; evicted pools are drained and the pool's filling started in the background.
        """
        loop = asyncio.get_running_loop()
        evicted: list[PoolT] = []
        with self._lock:
            pool = self._pools.get(project_id)
            if pool is None or not fits(pool):
                if pool is not None:
                    evicted.append(self._pools.pop(project_id))
                pool = self._pools[project_id] = make()
            pool.last_active = time.monotonic()
            while len(self._pools) > self.max_projects:
                oldest = min(
                    (k for k in self._pools if k != project_id), key=lambda k: self._pools[k].last_active
                )
                evicted.append(self._pools.pop(oldest))
        for old in evicted:
            self._spawn(self._drain(old))
        if pool.filling is None or pool.filling.done():
            pool.filling = loop.create_task(
                self._fill(project_id, pool), name=f"{self.task_prefix}:{project_id}"
            )
        if self._reaper is None or self._reaper.done():
            self._reaper = loop.create_task(self._reap_loop(), name=f"{self.task_prefix}-reaper")
        return pool

    def _touch(self, project_id: str) -> PoolT | None:
        """The project's pool, marked active (under the lock, from any thread); None when it has none."""
        pool = self._pools.get(project_id)
        if pool is not None:
            pool.last_active = time.monotonic()
        return pool

    def _spawn(self, work: Awaitable[object]) -> None:
        """Run ``work`` in the background (on the event loop); shutdown waits for it."""

        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, project_id: str, pool: PoolT) -> None:
        raise NotImplementedError

    async def _drain(self, pool: PoolT) -> None:
        raise NotImplementedError

    async def _stop_filling(self, pool: PoolT) -> None:
        if pool.filling is not None and not pool.filling.done():
            pool.filling.cancel()
            with contextlib.suppress(BaseException):
                await pool.filling

    async def drop_project(self, project_id: str) -> None:
        """Drain the project's pool now (the project was deleted)."""
        with self._lock:
            pool = self._pools.pop(project_id, None)
        if pool is not None:
            await self._drain(pool)

    async def reap(self) -> list[str]:
        """Drop the pools of projects idle too long or deleted; returns their ids."""
        now = time.monotonic()
        dropped = []
        for project_id, pool in list(self._pools.items()):
            idle = now - pool.last_active > self.idle_seconds
            gone = self._project_exists is not None and not await self._project_exists(project_id)
            if idle or gone:
                await self.drop_project(project_id)
                dropped.append(project_id)
        return dropped

    async def _reap_loop(self) -> None:
        interval = min(30.0, max(0.2, self.idle_seconds / 4))
        while self._pools and not self._closed:
            await asyncio.sleep(interval)
            try:
                await self.reap()
            except Exception:
                log.exception("reaping the pools of %s failed", self.task_prefix)

    async def close(self) -> None:
        """Shutdown: every pool is drained and nothing of them keeps running."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(BaseException):
                await self._reaper
        for project_id in list(self._pools):
            await self.drop_project(project_id)
        await asyncio.gather(*self._tasks, return_exceptions=True)
