"""An attempt's workspace before its first command: branch, worktree, copied files, images, container.

Local mode makes the worktree (or adopts a ready one). Cloud mode provisions the attempt's container
while ``git worktree add`` fills the folder it mounts (or takes a warm container whose folder is already
reserved). The result is the :class:`AttemptContext` every process of the attempt runs with.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anyon.services.board.images import ImageService
from anyon.services.db.columns import utc_now
from anyon.services.db.models import Project, Task, TaskAttempt
from anyon.services.errors import NotFound
from anyon.services.executions import actions
from anyon.services.executions.core import AttemptContext, ContainerProvisioner, EngineCore
from anyon.services.executions.head_start import HeadStarts
from anyon.services.git.checkouts_ahead import AheadCheckouts
from anyon.services.git.isolation import objects_dir
from anyon.services.git.paths import PathPolicy
from anyon.services.git.ready_worktrees import resolve as resolve_claim
from anyon.services.git.worktrees import WorktreeManager

if TYPE_CHECKING:
    from anyon.services.git.ready_worktrees import Claim
    from anyon.services.runners.warm import WarmSlot

log = logging.getLogger(__name__)

#: What a start produces: the context, the project's setup script, the agent's first prompt.
Prepared = tuple[AttemptContext, str | None, str]


@dataclass
class _WorktreePlan:
    """The rows and paths an attempt's start reads once, before its worktree exists."""

    attempt: TaskAttempt
    task: Task
    project: Project
    worktree: str
    objects_dir: str


class AttemptPreparation:
    def __init__(
        self,
        core: EngineCore,
        worktrees: WorktreeManager,
        head_starts: HeadStarts,
        *,
        provisioner: ContainerProvisioner | None,
        paths: PathPolicy,
        images: ImageService | None,
    ) -> None:
        self._core = core
        self._worktrees = worktrees
        self._head_starts = head_starts
        self._provisioner = provisioner
        # a project's stored path is checked against the roots again each time an attempt uses it
        self._paths = paths
        self._images = images  # copies a task's images into the worktree and rewrites prompt links
        self._ahead = AheadCheckouts(worktrees)

    def load_context(self, attempt_id: uuid.UUID) -> AttemptContext:
        attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
        if attempt is None:
            raise NotFound(f"Task attempt {attempt_id} not found")
        task = Task.get_by_id(attempt.task_id)
        project = Project.get_by_id(task.project_id)
        self._paths.check_stored(project.git_repo_path)
        worktree = attempt.container_ref or self._worktrees.worktree_path(attempt.id, task.title)
        return AttemptContext(
            attempt_id=attempt.id,
            task_id=task.id,
            project_id=project.id,
            repo_path=project.git_repo_path,
            worktree=worktree,
            branch=attempt.branch,
            cleanup_script=project.cleanup_script,
            task_title=task.title,
        )

    async def prepare(self, attempt_id: uuid.UUID) -> Prepared:
        """Worktree and container ready for the attempt's first command."""
        core, head_starts = self._core, self._head_starts
        slot = head_starts.take_slot(attempt_id)
        if self._provisioner is not None and self._worktrees.fills_existing_dir:
            return await self._prepare_concurrently(attempt_id, self._provisioner, slot)
        ready = head_starts.take_ready(attempt_id)
        prepared = await asyncio.to_thread(self._prepare_worktree, attempt_id, None, ready)
        context = prepared[0]
        core.timings.mark(attempt_id, "worktree_ready")
        if head_starts.ready_worktrees is not None:
            pool = head_starts.ready_worktrees
            project_id, repo_path = str(context.project_id), context.repo_path
            head_starts.after_first_output(attempt_id, lambda: pool.wanted(project_id, repo_path))
        await self.ensure_container(context)
        core.timings.mark(attempt_id, "container_ready")
        return prepared

    def _plan_worktree(
        self, attempt_id: uuid.UUID, reserve: bool, slot: WarmSlot | None = None
    ) -> _WorktreePlan:
        """Read what the start needs; with ``reserve``, create the empty worktree folder already.

        With a warm slot, the folder is the slot's (reserved when it was provisioned).
        """
        with self._core.db.connection():
            attempt = TaskAttempt.get_by_id(attempt_id)
            task = Task.get_by_id(attempt.task_id)
            project = Project.get_by_id(task.project_id)
        self._paths.check_stored(project.git_repo_path)
        shared = objects_dir(project.git_repo_path) if reserve or slot else ""
        if slot is not None and slot.objects_dir == shared:
            return _WorktreePlan(attempt, task, project, slot.folder, shared)
        worktree = self._worktrees.worktree_path(attempt.id, task.title)
        if reserve:
            self._worktrees.reserve(worktree)
        return _WorktreePlan(attempt, task, project, worktree, shared)

    def _prepare_worktree(
        self, attempt_id: uuid.UUID, plan: _WorktreePlan | None = None, claim: Claim | None = None
    ) -> Prepared:
        """Branch and worktree, copied files, container_ref; returns the context, setup script, prompt.

        With a ready worktree that can still be used, the branch is made there instead of a checkout.
        """
        ready = resolve_claim(claim)  # waits for a checkout being made ahead, if that is what was taken
        plan = plan or self._plan_worktree(attempt_id, reserve=False)
        attempt, task, project, worktree = plan.attempt, plan.task, plan.project, plan.worktree
        keep = ready is not None and ready.folder == worktree  # a warm container mounts the folder
        if ready is not None and self._ahead.adopt(
            ready, attempt.branch, attempt.target_branch, keep_folder=keep
        ):
            worktree = ready.folder
        else:
            self._worktrees.create(project.git_repo_path, attempt.branch, worktree, attempt.target_branch)
        if project.copy_files:
            self._worktrees.copy_files(project.git_repo_path, worktree, project.copy_files)
        with self._core.db.connection():
            TaskAttempt.update(container_ref=worktree, updated_at=utc_now()).where(
                TaskAttempt.id == attempt_id
            ).execute()
            context = self.load_context(attempt_id)
        prompt = actions.task_prompt(task.title, task.description)
        if self._images is not None:
            prompt = self._images.place_for_task(task.id, worktree, prompt)
        return context, project.setup_script, prompt

    async def _prepare_concurrently(
        self, attempt_id: uuid.UUID, provisioner: ContainerProvisioner, slot: WarmSlot | None = None
    ) -> Prepared:
        """Cloud mode: provision the container while ``git worktree add`` fills the worktree.

        The empty folder is created first so the container's bind mount has its source; git then checks
        out into that same directory, which the container sees fill up. Path identity is unchanged: the
        container mounts exactly the attempt's worktree and the project's object store (read-only) at
        their host paths.
        If the worktree fails, the container is removed again; if the container fails, the worktree stays
        (as when they were made one after the other) and the start fails with the container's error.

        With a warm slot (see :class:`~anyon.services.runners.warm.WarmPool`) the container is running
        already and the checkout goes into the slot's folder; the pool refills once the attempt printed.
        """
        core, head_starts = self._core, self._head_starts
        pool = head_starts.warm_pool
        if slot is not None and pool is not None and not await asyncio.to_thread(pool.usable, slot):
            log.warning("warm slot %s is no longer usable; provisioning afresh", slot.folder)
            head_starts.discard(slot, attempt_id)
            slot = None
        try:
            plan = await asyncio.to_thread(self._plan_worktree, attempt_id, True, slot)
        except BaseException:
            if slot is not None and pool is not None:
                head_starts.discard(slot, attempt_id)
            raise
        if slot is not None and pool is not None:
            if plan.worktree == slot.folder:
                pool.adopted(slot)
            else:  # the project's repository moved since the slot was made
                head_starts.discard(slot, attempt_id)
        if pool is not None:
            # keep the project's warm pool full, once the attempt printed: nothing delays its first byte
            project = plan.project
            head_starts.after_first_output(
                attempt_id, lambda: pool.wanted(str(project.id), project.git_repo_path, plan.objects_dir)
            )

        ready = slot.checkout if slot is not None and plan.worktree == slot.folder else None

        async def worktree() -> Prepared:
            result = await asyncio.to_thread(self._prepare_worktree, attempt_id, plan, ready)
            core.timings.mark(attempt_id, "worktree_ready")
            return result

        async def container() -> None:
            await provisioner.ensure_container(str(attempt_id), plan.worktree, plan.objects_dir)
            core.timings.mark(attempt_id, "container_ready")

        prepared, provisioned = await asyncio.gather(worktree(), container(), return_exceptions=True)
        if isinstance(prepared, BaseException):
            try:
                await provisioner.remove_container(str(attempt_id))
            except Exception:
                log.exception("removing the container of attempt %s after a failed start failed", attempt_id)
            raise prepared
        if isinstance(provisioned, BaseException):
            raise provisioned
        return prepared

    async def ensure_container(self, context: AttemptContext) -> None:
        """Cloud mode: the attempt's container exists (made again if it went); a no-op locally."""
        if self._provisioner is None:
            return
        shared = await asyncio.to_thread(objects_dir, context.repo_path)
        await self._provisioner.ensure_container(str(context.attempt_id), context.worktree, shared)

    async def ensure_worktree(self, attempt_id: uuid.UUID) -> AttemptContext:
        """Recreate the worktree if it vanished (spec §6 "recreate on demand"), and its container."""
        context: AttemptContext = await self._core.db_call(self.load_context, attempt_id)
        await asyncio.to_thread(self._worktrees.ensure, context.repo_path, context.branch, context.worktree)
        return context
