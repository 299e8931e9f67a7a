"""The warm pool: containers provisioned ahead of attempts, one empty worktree folder each.

Pairs with pre-started execs (:mod:`anyon.services.runners.prestart`): a claimed slot is the attempt's
running container with a launcher already waiting in it, so the attempt's first command starts at once.
The pool talks to the runner only through :class:`~anyon.services.runners.contracts.ContainerRunner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anyon.services.project_pools import ProjectPool, ProjectPools

if TYPE_CHECKING:
    from anyon.services.git.checkouts_ahead import AheadCheckouts, ReadyWorktree
    from anyon.services.git.worktrees import WorktreeManager
    from anyon.services.runners.contracts import ContainerRunner

log = logging.getLogger(__name__)


@dataclass
class WarmSlot:
    """A container provisioned ahead of an attempt: its attempt id is chosen now, the row comes later.

    Choosing the attempt id up front makes the container the attempt's own in every respect Docker
    cannot change later (name, ``anyon.attempt`` label, secrets directory). The worktree folder is
    fixed too, because a bind mount is: ``<base>/<short>-warm`` (see :class:`WarmPool`).
    """

    project_id: str
    attempt_id: uuid.UUID
    folder: str
    objects_dir: str
    inode: int
    #: the base branch checked out (detached) in the folder ahead, when the pool makes checkouts
    checkout: ReadyWorktree | None = None


@dataclass
class _ProjectPool(ProjectPool):
    repo_path: str
    objects_dir: str
    slots: list[WarmSlot] = field(default_factory=list)


class WarmPool(ProjectPools[_ProjectPool]):
    """A few started, hardened, mounted containers per recently active project, each with an empty slot.

    Why: creating and starting a container costs a few hundred milliseconds, more than the checkout of
    a worktree, so even provisioned concurrently it would delay the first byte. A claimed slot is the
    attempt's container already (see :class:`WarmSlot`), with a launcher waiting in it.

    Path: a bind mount is fixed when the container is created, before the attempt's title (hence the
    spec's ``<short>-<slug>`` folder) exists, and path identity forbids mounting it elsewhere. So an
    attempt started from a slot gets the worktree folder ``<base>/<short>-warm`` (its own short id,
    ``warm`` in place of the slug): a direct child of the base dir like every worktree, so the deletion
    fences, the orphan sweep and ``container_ref`` work unchanged, and its branch keeps the spec name.

    Bounds: ``docker.warm_pool_size`` slots per project (0 disables the pool), at most
    ``docker.warm_pool_projects`` projects (the least recently active one is dropped first), and a
    project idle for ``docker.warm_pool_idle_seconds`` or deleted loses its slots. On a swarm,
    ``docker.warm_pool_per_node`` caps the warm containers of one node (the runner's ``swarm_warm.py``).
    Slots are refilled in the background, after the attempt that used one has printed. ``claim`` is
    called from a worker thread (inside the attempt's database transaction), everything else on the
    event loop.
    """

    task_prefix = "anyon-warm"

    def __init__(
        self,
        runner: ContainerRunner,
        worktrees: WorktreeManager,
        *,
        size: int,
        max_projects: int,
        idle_seconds: float,
        project_exists: Callable[[str], Awaitable[bool]] | None = None,
        checkouts: AheadCheckouts | None = None,
    ) -> None:
        super().__init__(
            size=size, max_projects=max_projects, idle_seconds=idle_seconds, project_exists=project_exists
        )
        self._runner = runner
        self._worktrees = worktrees
        # fills each slot's folder with a checkout of the project's branch while its container starts
        self._checkouts = checkouts if checkouts is not None and checkouts.available else None

    @property
    def enabled(self) -> bool:
        return self.size > 0 and self.max_projects > 0

    def slots(self, project_id: str | None = None) -> list[WarmSlot]:
        with self._lock:
            pools = [self._pools[project_id]] if project_id in self._pools else []
            if project_id is None:
                pools = list(self._pools.values())
            return [slot for pool in pools for slot in pool.slots]

    def claim(self, project_id: str) -> WarmSlot | None:
        """Take a slot of the project, if one is ready (thread-safe)."""
        with self._lock:
            pool = self._pools.get(project_id)
            if pool is None:
                return None
            pool.last_active = time.monotonic()
            return pool.slots.pop(0) if pool.slots else None

    def usable(self, slot: WarmSlot) -> bool:
        """The slot's folder is still the directory its container mounted (nothing swept it), empty or
        holding the checkout made ahead (whether that can be taken is checked when it is taken)."""
        try:
            st = os.stat(slot.folder, follow_symlinks=False)
            with os.scandir(slot.folder) as entries:
                empty = next(entries, None) is None
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and st.st_ino == slot.inode and (empty or slot.checkout is not None)

    def wanted(self, project_id: str, repo_path: str, objects_dir: str) -> None:
        """The project is active: (re)fill its slots in the background."""
        if not self.enabled or self._closed:
            return
        self._activate(
            project_id,
            lambda pool: (pool.repo_path, pool.objects_dir) == (repo_path, objects_dir),
            lambda: _ProjectPool(repo_path, objects_dir),
        )

    async def _fill(self, project_id: str, pool: _ProjectPool) -> None:
        checkouts = self._checkouts
        if checkouts is not None:  # the branch moved: those checkouts would only be emptied when taken
            with self._lock:
                made = list(pool.slots)
            stale: list[WarmSlot] = []
            for slot in made:
                checkout = slot.checkout
                if checkout is not None and await asyncio.to_thread(checkouts.stale, checkout):
                    stale.append(slot)
            with self._lock:
                pool.slots = [slot for slot in pool.slots if slot not in stale]
            for slot in stale:
                await self.discard(slot)
        failures = 0
        while not self._closed and self._pools.get(project_id) is pool and len(pool.slots) < self.size:
            try:
                slot = await self._provision(project_id, pool)
            except Exception as exc:
                failures += 1
                log.warning("could not provision a warm container for project %s: %s", project_id, exc)
                if failures >= 3:
                    return
                await asyncio.sleep(1.0 * failures)
                continue
            with self._lock:
                kept = self._pools.get(project_id) is pool and not self._closed
                if kept:
                    pool.slots.append(slot)
            if not kept:  # the pool was dropped meanwhile
                await self.discard(slot)

    async def _provision(self, project_id: str, pool: _ProjectPool) -> WarmSlot:
        for _ in range(8):  # a short id (4 hex digits) may already be taken
            attempt_id = uuid.uuid4()
            folder = self._worktrees.worktree_path(attempt_id, "warm")
            try:
                await asyncio.to_thread(self._worktrees.reserve, folder)
            except Exception:
                if os.path.lexists(folder):
                    continue
                raise
            break
        else:
            raise RuntimeError("no free worktree folder name for a warm slot")
        slot = WarmSlot(project_id, attempt_id, folder, pool.objects_dir, os.stat(folder).st_ino)
        self._runner.reserved_ids.add(str(attempt_id))
        work: list[Awaitable[Any]] = [
            self._runner.ensure_container(str(attempt_id), folder, pool.objects_dir)
        ]
        if self._checkouts is not None:
            work.append(
                asyncio.to_thread(self._checkouts.make, project_id, attempt_id, pool.repo_path, folder)
            )
        results = await asyncio.gather(*work, return_exceptions=True)
        if len(results) > 1 and not isinstance(results[1], BaseException):
            slot.checkout = results[1]
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            await self.discard(slot)
            raise failed
        return slot

    async def discard(self, slot: WarmSlot) -> None:
        """Remove a slot's container, secrets directory and empty folder."""
        try:
            await self._runner.remove_container(str(slot.attempt_id))
        except Exception as exc:
            log.warning("could not remove warm container of %s: %s", slot.attempt_id, exc)
        self._runner.reserved_ids.discard(str(slot.attempt_id))
        if slot.checkout is not None and self._checkouts is not None:
            await asyncio.to_thread(self._checkouts.remove, slot.checkout)
        with contextlib.suppress(OSError):
            os.rmdir(slot.folder)

    def adopted(self, slot: WarmSlot) -> None:
        """The slot became a real attempt: it is the attempt's container from now on."""
        self._runner.reserved_ids.discard(str(slot.attempt_id))

    async def _drain(self, pool: _ProjectPool) -> None:
        await self._stop_filling(pool)
        with self._lock:
            slots, pool.slots = pool.slots, []
        await asyncio.gather(*(self.discard(slot) for slot in slots))
