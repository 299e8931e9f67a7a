"""ExecutionService: the one face of the execution engine that resources, streams and maintenance call.

Attempts, their process chains, log capture, commits and statuses (spec §5.3, §5.4). Each method hands
over to the part that owns the work; the parts are built and wired in
:mod:`anyon.services.composition.executions`:

* :class:`~.start.AttemptStarter` — create the attempt row, start it (:mod:`.preparation`: worktree and
  container; :mod:`.head_start`: warm containers and ready worktrees taken);
* :class:`~.supervisor.ProcessSupervisor` — one asyncio task per process from queueing to exit, with its
  output (:mod:`.output`), end (:mod:`.finish`) and rows (:mod:`.records`);
* :class:`~.stopping.ProcessStopper` — stop a process or an attempt, sweep what nobody supervises;
* :class:`~.conversation.Conversation` — follow-ups, retries, queued drafts, agent setup, dev server;
* :class:`~.cleanup.AttemptCleanup` — containers and worktrees of deleted tasks.

Everything here is mode-independent: the only difference between local and cloud mode is the
:class:`~anyon.services.runners.base.Runner` the supervisor is given and the optional
:class:`~.core.ContainerProvisioner` that prepares an attempt's container before its first command.

Faults (cloud mode): a process whose runtime stops answering mid-run ends ``failed`` (or ``killed`` when
a Stop asked for it) with the reason in its log, and its task leaves ``inprogress``; the runner sweeps its
container (kills what is left) as soon as the Engine answers again. Stop, follow-up and task delete that
need the Engine raise :class:`~anyon.services.runners.base.RunnerUnavailable` (HTTP 503) *after* settling
what they could, and write nothing half. Stop always stops: processes the database says run but nothing
here supervises (left by a crash) are marked ``killed`` and the attempt's container is swept.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anyon.services.agents.profile_catalog import ExecutorProfileId
from anyon.services.board.tasks import TaskService
from anyon.services.db.models import TaskAttempt
from anyon.services.executions.cleanup import AttemptCleanup
from anyon.services.executions.conversation import Conversation
from anyon.services.executions.core import AttemptContext, ContainerProvisioner, EngineCore, LiveProcess
from anyon.services.executions.head_start import HeadStarts
from anyon.services.executions.preparation import AttemptPreparation
from anyon.services.executions.start import AttemptStarter
from anyon.services.executions.stopping import ProcessStopper
from anyon.services.executions.supervisor import ProcessSupervisor
from anyon.services.executions.timings import StartTimings
from anyon.services.logs.msgstore import MsgStore

if TYPE_CHECKING:
    from anyon.services.git.ready_worktrees import ReadyWorktrees
    from anyon.services.runners.warm import WarmPool

# the names this module had before the split, for code that imports them from here
__all__ = ["AttemptContext", "ContainerProvisioner", "EngineParts", "ExecutionService", "LiveProcess"]


@dataclass
class EngineParts:
    """The parts of the engine, wired together.

    Built by :func:`anyon.services.composition.executions.executions_for`.
    """

    core: EngineCore
    head_starts: HeadStarts
    preparation: AttemptPreparation
    starter: AttemptStarter
    supervisor: ProcessSupervisor
    stopper: ProcessStopper
    conversation: Conversation
    cleanup: AttemptCleanup


class ExecutionService:
    def __init__(self, parts: EngineParts) -> None:
        self._parts = parts
        self._core = parts.core
        self._starter = parts.starter
        self._stopper = parts.stopper
        self._conversation = parts.conversation
        self._head_starts = parts.head_starts

    @property
    def timings(self) -> StartTimings:
        return self._core.timings

    @property
    def warm_pool(self) -> WarmPool | None:
        return self._head_starts.warm_pool

    @property
    def ready_worktrees(self) -> ReadyWorktrees | None:
        return self._head_starts.ready_worktrees

    # status and lookup -------------------------------------------------------------------------
    def store_for(self, process_id: uuid.UUID) -> MsgStore | None:
        live = self._core.live.get(process_id)
        return live.store if live else None

    def status(self) -> dict[str, int]:
        slots = self._parts.supervisor.slots
        return {"running": slots.running, "queued": slots.queued, "live": len(self._core.live)}

    def attempt_busy(self, attempt_id: uuid.UUID) -> bool:
        return self._core.attempt_busy(attempt_id)

    # starting attempts -------------------------------------------------------------------------
    async def create_attempt(self, task_id: uuid.UUID, profile_json: Any, base_branch: str) -> dict[str, Any]:
        return await self._starter.create_attempt(task_id, profile_json, base_branch)

    async def create_and_start(
        self, tasks: TaskService, task_body: dict[str, Any], profile_json: Any, base_branch: str
    ) -> dict[str, Any]:
        return await self._starter.create_and_start(tasks, task_body, profile_json, base_branch)

    async def start_attempt(self, attempt_id: uuid.UUID, profile: ExecutorProfileId) -> dict[str, Any]:
        return await self._starter.start_attempt(attempt_id, profile)

    async def ensure_worktree(self, attempt_id: uuid.UUID) -> AttemptContext:
        return await self._parts.preparation.ensure_worktree(attempt_id)

    # stopping ----------------------------------------------------------------------------------
    async def stop_process(self, process_id: uuid.UUID) -> None:
        await self._stopper.stop_process(process_id)

    async def stop_attempt(self, attempt_id: uuid.UUID) -> None:
        await self._stopper.stop_attempt(attempt_id)

    async def before_task_delete(self, task_id: uuid.UUID) -> None:
        await self._stopper.before_task_delete(task_id)

    async def stop_all(self) -> None:
        """Shutdown: nothing the server started is left running (warm containers are removed)."""
        await self._stopper.stop_everything()
        for task in list(self._core.background):
            task.cancel()
        await asyncio.gather(*self._core.background, return_exceptions=True)
        await self._head_starts.close()

    # follow-up, retry, dev server --------------------------------------------------------------
    async def follow_up(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        return await self._conversation.follow_up(attempt_id, body)

    async def run_agent_setup(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        return await self._conversation.run_agent_setup(attempt_id, body)

    async def send_queued(self, attempt_id: uuid.UUID) -> None:
        await self._conversation.send_queued(attempt_id)

    async def replace_process(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        return await self._conversation.replace_process(attempt_id, body)

    async def start_dev_server(self, attempt_id: uuid.UUID) -> None:
        await self._conversation.start_dev_server(attempt_id)

    # projects and teardown ---------------------------------------------------------------------
    def project_active(self, project_id: uuid.UUID) -> None:
        self._head_starts.project_active(project_id)

    async def project_deleted(self, project_id: uuid.UUID) -> None:
        await self._head_starts.project_deleted(project_id)

    async def cleanup_attempts_later(self, attempts: list[TaskAttempt], repo_path: str | None) -> None:
        await self._parts.cleanup.cleanup_attempts_later(attempts, repo_path)

    async def cleanup_attempts(self, attempts: list[TaskAttempt], repo_path: str | None) -> None:
        await self._parts.cleanup.cleanup_attempts(attempts, repo_path)
