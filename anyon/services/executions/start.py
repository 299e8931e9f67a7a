"""Creating and starting attempts (spec §5.3): the row first, then worktree/container, then the chain.

``POST /api/task-attempts`` answers with the attempt row as soon as it is written; the start runs in the
background: :class:`~.preparation.AttemptPreparation` makes the workspace, then the chain setup script →
coding agent → cleanup script is handed to the :class:`~.supervisor.ProcessSupervisor`. A start that
fails is recorded as a ``failed`` first process with the reason in its log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.agents.profile_catalog import ExecutorProfileId
from anyon.services.board.tasks import TaskService
from anyon.services.board.user_config import UserConfigService
from anyon.services.db import queries
from anyon.services.db.models import Project, Task, TaskAttempt
from anyon.services.db.serialize import attempt_json
from anyon.services.errors import ServiceError
from anyon.services.executions import actions
from anyon.services.executions.core import EngineCore, parse_profile
from anyon.services.executions.head_start import HeadStarts
from anyon.services.executions.preparation import AttemptPreparation
from anyon.services.executions.records import ProcessRecords
from anyon.services.executions.supervisor import ProcessSupervisor
from anyon.services.git import GitService
from anyon.services.git.errors import GitServiceError
from anyon.services.git.paths import PathPolicy
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.runners.base import RunnerError
from anyon.services.team.access import owner_id

if TYPE_CHECKING:
    from anyon.services.git.ready_worktrees import Claim
    from anyon.services.runners.warm import WarmSlot

log = logging.getLogger(__name__)


class AttemptStarter:
    def __init__(
        self,
        core: EngineCore,
        head_starts: HeadStarts,
        preparation: AttemptPreparation,
        supervisor: ProcessSupervisor,
        records: ProcessRecords,
        *,
        profiles: ExecutorProfiles,
        git: GitService,
        worktrees: WorktreeManager,
        user_config: UserConfigService,
        paths: PathPolicy,
    ) -> None:
        self._core = core
        self._head_starts = head_starts
        self._preparation = preparation
        self._supervisor = supervisor
        self._records = records
        self._profiles = profiles
        self._git = git
        self._worktrees = worktrees
        self._user_config = user_config
        self._paths = paths

    async def create_attempt(self, task_id: uuid.UUID, profile_json: Any, base_branch: str) -> dict[str, Any]:
        """``POST /api/task-attempts``: insert the attempt, answer with the row, start it afterwards."""
        profile = parse_profile(self._profiles, profile_json)
        if not base_branch or not base_branch.strip():
            raise ServiceError("base_branch cannot be empty")
        core = self._core
        core.loop = asyncio.get_running_loop()
        requested = time.monotonic()
        attempt = await core.db_call(self._insert_attempt, task_id, profile, base_branch.strip())
        core.timings.mark(attempt.id, "requested", requested)
        payload = attempt_json(attempt)
        core.spawn_background(self._start_attempt_logged(attempt.id, profile), f"start-attempt:{attempt.id}")
        return payload

    async def create_and_start(
        self, tasks: TaskService, task_body: dict[str, Any], profile_json: Any, base_branch: str
    ) -> dict[str, Any]:
        """``POST /api/tasks/create-and-start``: all or nothing, then start and report the task.

        The profile is checked before anything is written, and the task and its attempt rows are
        inserted in one transaction, so a bad executor or base branch leaves no task, no attempt, no
        branch and no worktree (those are made by the start, which only runs on a committed attempt).
        """
        profile = parse_profile(self._profiles, profile_json)
        if not base_branch or not base_branch.strip():
            raise ServiceError("base_branch cannot be empty")
        self._core.loop = asyncio.get_running_loop()
        branch = base_branch.strip()

        def insert(task: Task) -> TaskAttempt:
            return self._insert_attempt(task.id, profile, branch)

        task, attempt = await asyncio.to_thread(tasks.create_with, task_body, insert)
        assert attempt is not None
        await self._start_attempt_logged(attempt.id, profile)
        result: dict[str, Any] = await self._core.db_call(queries.task_with_status, uuid.UUID(task["id"]))
        return result

    def _insert_attempt(
        self, task_id: uuid.UUID, profile: ExecutorProfileId, base_branch: str
    ) -> TaskAttempt:
        claimed: list[WarmSlot] = []
        ready: list[Claim] = []
        try:
            return self._insert_attempt_row(task_id, profile, base_branch, claimed, ready)
        except BaseException:
            self._head_starts.give_back(claimed, ready)
            raise

    def _insert_attempt_row(
        self,
        task_id: uuid.UUID,
        profile: ExecutorProfileId,
        base_branch: str,
        claimed: list[WarmSlot],
        ready: list[Claim],
    ) -> TaskAttempt:
        with self._core.db.atomic():
            task = Task.get_or_none(Task.id == task_id)
            if task is None:
                raise ServiceError(f"Task {task_id} does not exist")
            project = Project.get_by_id(task.project_id)
            self._paths.check_stored(project.git_repo_path)
            if not self._git.is_repository(project.git_repo_path):
                raise ServiceError(f"Project path {project.git_repo_path} is no longer a git repository")
            if not self._git.branch_exists(project.git_repo_path, base_branch):
                raise ServiceError(f"Branch '{base_branch}' does not exist in {project.git_repo_path}")
            taken = self._head_starts.claim(
                str(project.id), project.git_repo_path, base_branch, claimed, ready
            )
            attempt_id = taken if taken is not None else uuid.uuid4()
            prefix = self._user_config.get().get("git_branch_prefix", "vk")
            branch = self._worktrees.branch_name(prefix, attempt_id, task.title)
            attempt = TaskAttempt.create(
                id=attempt_id,
                task=task.id,
                executor=profile.executor,
                target_branch=base_branch,
                branch=branch,
                container_ref=None,
                user_id=owner_id(),  # who started it: its container gets that account's agent home
            )
        self._head_starts.keep(attempt_id, claimed, ready)
        return attempt

    async def _start_attempt_logged(self, attempt_id: uuid.UUID, profile: ExecutorProfileId) -> None:
        try:
            await self.start_attempt(attempt_id, profile)
        except (RunnerError, GitServiceError, ServiceError, OSError):
            pass  # recorded on the attempt's first process and logged by start_attempt
        except Exception:
            log.exception("starting attempt %s failed", attempt_id)

    async def start_attempt(self, attempt_id: uuid.UUID, profile: ExecutorProfileId) -> dict[str, Any]:
        """Worktree (and container) ready, then setup script → agent → cleanup script (spec §5.3).

        When the attempt cannot start (the container runtime is unreachable, the image is missing, the
        worktree cannot be made), the first process is recorded as ``failed`` with the reason in its log
        and the task goes to ``inreview``: the UI shows why, instead of an attempt that never moves.
        """
        try:
            context, setup_script, prompt = await self._preparation.prepare(attempt_id)
            agent = actions.initial(prompt, profile, actions.cleanup_or_none(context.cleanup_script))
            first = (
                actions.script(setup_script, actions.SETUP, agent)
                if setup_script and setup_script.strip()
                else agent
            )
            return await self._supervisor.start_execution(context, first)
        except (RunnerError, GitServiceError, ServiceError, OSError) as exc:
            await self._records.record_start_failure(attempt_id, profile, exc)
            raise
