"""After a task delete: the containers and worktrees of its attempts go, in the background."""

from __future__ import annotations

import asyncio
import logging

from anyon.services.db.models import TaskAttempt
from anyon.services.executions.core import ContainerProvisioner, EngineCore
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.runners.base import RunnerUnavailable

log = logging.getLogger(__name__)


class AttemptCleanup:
    def __init__(
        self, core: EngineCore, worktrees: WorktreeManager, provisioner: ContainerProvisioner | None
    ) -> None:
        self._core = core
        self._worktrees = worktrees
        self._provisioner = provisioner

    async def cleanup_attempts_later(self, attempts: list[TaskAttempt], repo_path: str | None) -> None:
        """Schedule :meth:`cleanup_attempts` in the background; the caller answers at once."""
        if attempts:
            self._core.spawn_background(self.cleanup_attempts(attempts, repo_path), "cleanup-attempts")

    async def cleanup_attempts(self, attempts: list[TaskAttempt], repo_path: str | None) -> None:
        """Remove containers and worktrees of the attempts; a container the Engine cannot reach now is
        left for the periodic reconcile."""
        for attempt in attempts:
            if self._provisioner is not None:
                try:
                    await self._provisioner.remove_container(str(attempt.id))
                except RunnerUnavailable as exc:
                    log.warning(
                        "the container of attempt %s is left for the next reconcile: %s", attempt.id, exc
                    )
                except Exception:
                    log.exception("removing the container of attempt %s failed", attempt.id)
            if attempt.container_ref:
                try:
                    await asyncio.to_thread(self._worktrees.remove, repo_path, attempt.container_ref)
                except Exception:
                    log.exception("removing the worktree of attempt %s failed", attempt.id)
