"""What is made ahead of an attempt: warm containers (cloud mode) and ready worktrees (local mode).

An attempt row may take a warm slot (:class:`~anyon.services.runners.warm.WarmPool`: a running container
with its folder reserved) or a ready worktree (:class:`~anyon.services.git.ready_worktrees.ReadyWorktrees`: a
checkout of the base branch) when it is inserted; its id is then the one chosen when that was made. This
class holds what was taken until the attempt starts, gives back what an attempt that was not written
took, and keeps the pools filled once an attempt has printed its first byte.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from anyon.services.db.models import Project
from anyon.services.executions.core import EngineCore
from anyon.services.git import GitService
from anyon.services.git.isolation import objects_dir

if TYPE_CHECKING:
    from anyon.services.git.ready_worktrees import Claim, ReadyWorktrees
    from anyon.services.runners.warm import WarmPool, WarmSlot

#: Seconds a start waits for the attempt's first output before refilling the warm pool anyway.
_REFILL_AFTER_OUTPUT_SECONDS = 2.0


class HeadStarts:
    def __init__(
        self,
        core: EngineCore,
        git: GitService,
        *,
        warm_pool: WarmPool | None,
        ready_worktrees: ReadyWorktrees | None,
    ) -> None:
        self._core = core
        self._git = git
        self.warm_pool = warm_pool
        self.ready_worktrees = ready_worktrees
        self._claimed: dict[uuid.UUID, WarmSlot] = {}  # slot taken by an attempt row, not started yet
        self._ready: dict[uuid.UUID, Claim] = {}  # taken by an attempt row, not started yet

    def claim(
        self,
        project_id: str,
        repo_path: str,
        base_branch: str,
        claimed: list[WarmSlot],
        ready: list[Claim],
    ) -> uuid.UUID | None:
        """Inside the attempt row's transaction: the id of a warm slot or ready worktree taken, if any."""
        if self.warm_pool is not None:
            # a warm container's attempt id was chosen when it was provisioned
            slot = self.warm_pool.claim(project_id)
            if slot is not None:
                claimed.append(slot)
                return slot.attempt_id
        elif self.ready_worktrees is not None:
            # a ready worktree's attempt id was chosen when it was made
            checkout = self.ready_worktrees.claim(project_id, repo_path, base_branch)
            if checkout is not None:
                ready.append(checkout)
                return checkout.attempt_id
        return None

    def keep(self, attempt_id: uuid.UUID, claimed: list[WarmSlot], ready: list[Claim]) -> None:
        """The attempt row is written: what it took waits for its start."""
        if claimed:
            self._claimed[attempt_id] = claimed[0]
        if ready:
            self._ready[attempt_id] = ready[0]

    def give_back(self, claimed: list[WarmSlot], ready: list[Claim]) -> None:
        """The attempt row was not written: what it took goes back to nobody."""
        for slot in claimed:
            self._release_slot(slot)
        for checkout in ready:
            if self.ready_worktrees is not None:
                self.ready_worktrees.release(checkout)

    def _release_slot(self, slot: WarmSlot) -> None:
        loop = self._core.loop
        if self.warm_pool is not None and loop is not None:
            pool = self.warm_pool
            loop.call_soon_threadsafe(
                lambda: self._core.spawn_background(pool.discard(slot), f"warm-discard:{slot.attempt_id}")
            )

    def take_slot(self, attempt_id: uuid.UUID) -> WarmSlot | None:
        return self._claimed.pop(attempt_id, None)

    def take_ready(self, attempt_id: uuid.UUID) -> Claim | None:
        return self._ready.pop(attempt_id, None)

    def discard(self, slot: WarmSlot, attempt_id: uuid.UUID) -> None:
        """A taken slot that will not be used (unusable, or the project's repository moved)."""
        if self.warm_pool is not None:
            self._core.spawn_background(self.warm_pool.discard(slot), f"warm-discard:{attempt_id}")

    def after_first_output(self, attempt_id: uuid.UUID, refill: Callable[[], None]) -> None:
        """Run ``refill`` once the attempt printed (or after a short wait), on the event loop.

        Nothing delays the attempt's first byte: making the next container or checkout competes with it.
        """
        event = self._core.first_output[attempt_id] = asyncio.Event()

        async def wait_then_refill() -> None:
            try:
                await asyncio.wait_for(event.wait(), _REFILL_AFTER_OUTPUT_SECONDS)
            except TimeoutError:
                pass
            finally:
                self._core.first_output.pop(attempt_id, None)
            refill()

        self._core.spawn_background(wait_then_refill(), f"refill:{attempt_id}")

    def project_active(self, project_id: uuid.UUID) -> None:
        """The project was just created, opened or given a task: warm a container for its next attempt.

        Fire and forget (the caller answers at once); a no-op without a warm pool. This is what makes
        the first attempt of a project as quick as the later ones: the UI opens the project and the user
        writes the task before an attempt is started.
        """
        if self.warm_pool is None and self.ready_worktrees is None:
            return
        pool, ready = self.warm_pool, self.ready_worktrees

        async def warm() -> None:
            def lookup() -> tuple[str, str] | None:
                with self._core.db.connection():
                    project = Project.get_or_none(Project.id == project_id)
                if project is None or not self._git.is_repository(project.git_repo_path):
                    return None
                return project.git_repo_path, objects_dir(project.git_repo_path) if pool else ""

            found = await asyncio.to_thread(lookup)
            if found is not None and pool is not None:
                pool.wanted(str(project_id), *found)
            if found is not None and ready is not None:
                ready.wanted(str(project_id), found[0])

        self._core.spawn_background(warm(), f"warm-project:{project_id}")

    async def project_deleted(self, project_id: uuid.UUID) -> None:
        """A deleted project's warm containers go at once, not at the next idle reap."""
        if self.warm_pool is not None:
            await self.warm_pool.drop_project(str(project_id))
        if self.ready_worktrees is not None:
            await self.ready_worktrees.drop_project(str(project_id))

    async def close(self) -> None:
        """Shutdown: taken slots and checkouts are given back, the pools close (warm containers go)."""
        if self.warm_pool is not None:
            for slot in self._claimed.values():
                await self.warm_pool.discard(slot)
            self._claimed.clear()
            await self.warm_pool.close()
        if self.ready_worktrees is not None:
            for checkout in self._ready.values():
                await asyncio.to_thread(self.ready_worktrees.release, checkout)
            self._ready.clear()
            await self.ready_worktrees.close()
