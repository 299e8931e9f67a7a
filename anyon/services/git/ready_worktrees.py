"""Ready worktrees (local mode): a checkout of the base branch made before the attempt that uses it.

Why: the checkout is what an attempt's start waits for (``git worktree add`` of 2,000 files takes ~100 ms
on a quiet disk, several hundred on a busy one, seconds for 50,000 files); everything else takes a few
milliseconds. So for a recently active project (created, opened, given a task, or just used by an
attempt) one checkout of its current branch is made in the background
(:class:`~anyon.services.git.checkouts_ahead.AheadCheckouts`), and the next attempt on that branch takes it:
it only creates its branch at the same commit and points the checkout's ``HEAD`` at it.

Invalidation: a ready worktree is taken only if its base branch is the one asked for and still points
at the commit it was made from (checked under the repository lock while the branch is created); the
pool also drops stale ones whenever the project is marked active again. Clean-up: a ready worktree not
taken is removed when its project is deleted or idle for ``idle_seconds``, when the pool is closed
(shutdown), and after a crash by the start-up orphan sweep (its folder has no attempt row); being
detached, it leaves no branch behind.

Cloud mode uses the warm container pool instead, whose slots' folders are filled the same way
(``runners/warm.py``). ``claim`` runs in a worker thread (inside the attempt's database transaction),
``adopt`` and the filling in worker threads, the rest on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from anyon.services.git.checkouts_ahead import AheadCheckouts, ReadyWorktree
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.project_pools import ProjectPool, ProjectPools

log = logging.getLogger(__name__)


@dataclass(eq=False)
class PendingWorktree:
    """A ready worktree still being checked out; an attempt may take it and wait for it.

    Why: an attempt posted while its project's checkout is being made ahead (right after the project's
    creation) would otherwise make a second checkout beside it and both would share the disk. Taking the
    one under way, it waits only for the rest of that checkout (in its start, not in the request).
    """

    attempt_id: uuid.UUID
    folder: str
    base_branch: str
    done: concurrent.futures.Future[ReadyWorktree | None] = field(default_factory=concurrent.futures.Future)
    claimed: bool = False


#: What an attempt's row takes: a checkout made, or one being made.
Claim = ReadyWorktree | PendingWorktree


def resolve(claim: Claim | None, timeout: float = 1800.0) -> ReadyWorktree | None:
    """The checkout a claim stands for, waiting for it if it is still being made (worker thread only);
    None when making it failed (the caller then makes a worktree as usual)."""
    if not isinstance(claim, PendingWorktree):
        return claim
    try:
        return claim.done.result(timeout)
    except Exception:
        return None


@dataclass
class _ProjectPool(ProjectPool):
    repo_path: str
    ready: list[ReadyWorktree] = field(default_factory=list)
    pending: PendingWorktree | None = None


class ReadyWorktrees(ProjectPools[_ProjectPool]):
    """Ready checkouts per recently active project (local mode); see the module docstring."""

    task_prefix = "anyon-ready"

    def __init__(
        self,
        worktrees: WorktreeManager,
        *,
        size: int,
        max_projects: int,
        idle_seconds: float,
        project_exists: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        super().__init__(
            size=size, max_projects=max_projects, idle_seconds=idle_seconds, project_exists=project_exists
        )
        self._worktrees = worktrees
        self._checkouts = AheadCheckouts(worktrees)
        self._loop: asyncio.AbstractEventLoop | None = None  # for releases from worker threads

    @property
    def enabled(self) -> bool:
        """On when sized and ``git`` is installed (see :attr:`AheadCheckouts.available`)."""
        return self.size > 0 and self.max_projects > 0 and self._checkouts.available

    def ready(self, project_id: str | None = None) -> list[ReadyWorktree]:
        with self._lock:
            pools = list(self._pools.values()) if project_id is None else [self._pools.get(project_id)]
            return [r for pool in pools if pool is not None for r in pool.ready]

    # --- taking one ---------------------------------------------------------------------------------

    def claim(self, project_id: str, repo_path: str, base_branch: str) -> Claim | None:
        """Take a ready worktree of the project made from ``base_branch`` (thread-safe), if there is one,
        else the one being made from it (see :class:`PendingWorktree`).

        Whether the branch has moved since is checked when it is taken (:meth:`AheadCheckouts.adopt`).
        """
        with self._lock:
            pool = self._pools.get(project_id)
            if pool is None or pool.repo_path != repo_path:
                return None
            pool.last_active = time.monotonic()
            for ready in pool.ready:
                if ready.base_branch == base_branch:
                    pool.ready.remove(ready)
                    return ready
            pending = pool.pending
            if pending is not None and not pending.claimed and pending.base_branch == base_branch:
                pending.claimed = True
                return pending
        return None

    def release(self, claim: Claim) -> None:
        """A claimed worktree whose attempt row was not written: remove it (from any thread)."""
        if isinstance(claim, PendingWorktree):
            claim.done.add_done_callback(lambda done: self._remove_made(done))
            return
        ready = claim
        loop = self._loop
        if loop is None or loop.is_closed():
            self._checkouts.remove(ready)
            return
        loop.call_soon_threadsafe(self._spawn, asyncio.to_thread(self._checkouts.remove, ready))

    # --- filling ------------------------------------------------------------------------------------

    def wanted(self, project_id: str, repo_path: str) -> None:
        """The project is active: make its ready worktrees in the background (on the event loop)."""
        if not self.enabled or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._activate(project_id, lambda pool: pool.repo_path == repo_path, lambda: _ProjectPool(repo_path))

    async def _fill(self, project_id: str, pool: _ProjectPool) -> None:
        stale = await asyncio.to_thread(self._stale, pool)
        for ready in stale:
            await asyncio.to_thread(self._checkouts.remove, ready)
        failures = 0
        while not self._closed and self._pools.get(project_id) is pool and len(pool.ready) < self.size:
            made: ReadyWorktree | None
            try:
                made = await asyncio.to_thread(self._make, project_id, pool)
            except Exception as exc:
                failures += 1
                log.warning("could not make a ready worktree for project %s: %s", project_id, exc)
                if failures >= 3:
                    return
                await asyncio.sleep(1.0 * failures)
                continue
            if made is None:  # no branch checked out (detached or unborn HEAD), or an attempt took it
                return

    def _stale(self, pool: _ProjectPool) -> list[ReadyWorktree]:
        """Take out the ready worktrees whose base branch moved (they are removed, then made again)."""
        stale = [r for r in list(pool.ready) if self._checkouts.stale(r)]
        with self._lock:
            pool.ready = [r for r in pool.ready if r not in stale]
        return stale

    def _make(self, project_id: str, pool: _ProjectPool) -> ReadyWorktree | None:
        """Make one ready worktree (worker thread); an attempt may take it while it is being made.

        Everything after the checkout happens here, in the thread, so that a cancelled fill (project
        dropped, shutdown) cannot leave a checkout nobody owns.
        """
        base_branch = self._checkouts.current_branch(pool.repo_path)
        if base_branch is None:
            return None
        for _ in range(8):  # a short id (4 hex digits) may already be taken
            attempt_id = uuid.uuid4()
            folder = self._worktrees.worktree_path(attempt_id, "warm")
            if not os.path.lexists(folder):
                break
        else:
            raise RuntimeError("no free worktree folder name for a ready worktree")
        pending = PendingWorktree(attempt_id, folder, base_branch)
        with self._lock:
            pool.pending = pending
        try:
            made = self._checkouts.make(project_id, attempt_id, pool.repo_path, folder)
        except BaseException as exc:
            with self._lock:
                pool.pending = None
            pending.done.set_exception(exc)
            raise
        with self._lock:
            pool.pending = None
            claimed = pending.claimed
            kept = (
                not claimed and made is not None and self._pools.get(project_id) is pool and not self._closed
            )
            if kept and made is not None:
                pool.ready.append(made)
        pending.done.set_result(made)
        if not claimed and not kept and made is not None:
            self._checkouts.remove(made)
        return None if claimed else made

    def _remove_made(self, done: concurrent.futures.Future[ReadyWorktree | None]) -> None:
        made = None if done.exception() is not None else done.result()
        if made is not None:
            self.release(made)

    # --- dropping -----------------------------------------------------------------------------------

    async def _drain(self, pool: _ProjectPool) -> None:
        await self._stop_filling(pool)
        with self._lock:
            ready, pool.ready = pool.ready, []
        for one in ready:
            await asyncio.to_thread(self._checkouts.remove, one)
