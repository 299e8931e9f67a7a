"""The database rows of execution processes: inserted, given a session, ended, closed, settled.

Every write the engine makes about a process goes through here, so the order the UI relies on (the
agent's commit lands before its ``completed`` status; a stop marks ``killed`` before the process ends)
is kept in one place.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from anyon.services.agents.profile_catalog import ExecutorProfileId
from anyon.services.board.attempt_repos import AttemptRepos
from anyon.services.db import queries
from anyon.services.db.columns import utc_now
from anyon.services.db.models import ExecutionProcess, ExecutorSession, Project, Task, TaskAttempt
from anyon.services.executions import actions
from anyon.services.executions.core import AttemptContext, EngineCore, LiveProcess
from anyon.services.git import GitService
from anyon.services.git.errors import GitServiceError
from anyon.services.team.access import owner_id

log = logging.getLogger(__name__)


class ProcessRecords:
    def __init__(self, core: EngineCore, git: GitService, repos: AttemptRepos) -> None:
        self._core = core
        self._db = core.db
        self._git = git
        self._repos = repos

    def head_or_none(self, context: AttemptContext) -> str | None:
        try:
            return self._git.head_oid(self._repos.view(context.checkout))
        except GitServiceError:
            return None

    def insert_process(
        self, context: AttemptContext, action: dict[str, Any], run_reason: str
    ) -> ExecutionProcess:
        before = self.head_or_none(context)
        with self._db.connection(), self._db.atomic():
            if run_reason != "devserver":
                Task.update(status="inprogress", updated_at=utc_now()).where(
                    Task.id == context.task_id
                ).execute()
            process = ExecutionProcess.create(
                task_attempt=context.attempt_id,
                status="running",
                run_reason=run_reason,
                executor_action=action,
                before_head_commit=before,
                user_id=owner_id(),  # the account that ran it (None: local mode, the API token)
            )
            if actions.is_agent(action):
                ExecutorSession.create(
                    task_attempt=context.attempt_id,
                    execution_process=process.id,
                    prompt=action["typ"]["prompt"],
                    session_id=None,
                )
        return process

    def save_session(self, process_id: uuid.UUID, session_id: str | None, summary: str | None) -> None:
        updates: dict[Any, Any] = {ExecutorSession.updated_at: utc_now()}
        if session_id is not None:
            updates[ExecutorSession.session_id] = session_id
        if summary is not None:
            updates[ExecutorSession.summary] = summary
        ExecutorSession.update(updates).where(ExecutorSession.execution_process == process_id).execute()

    def set_status(self, process_id: uuid.UUID, status: str, exit_code: int | None) -> bool:
        """Record the end of a process unless it was already ended (a stop marks it killed first)."""
        now = utc_now()
        with self._db.atomic():
            changed = (
                ExecutionProcess.update(status=status, exit_code=exit_code, completed_at=now, updated_at=now)
                .where((ExecutionProcess.id == process_id) & (ExecutionProcess.status == "running"))
                .execute()
            )
        return bool(changed)

    async def record_exit(self, live: LiveProcess, status: str, exit_code: int | None) -> None:
        await self._core.db_call(self.set_status, live.process_id, status, exit_code)

    def close_rows(self, live: LiveProcess, *, finalize: bool) -> None:
        """``after_head_commit``; with ``finalize``, the task leaves ``inprogress`` if nothing else runs."""
        after = self.head_or_none(live.context)
        with self._db.connection(), self._db.atomic():
            ExecutionProcess.update(after_head_commit=after).where(
                ExecutionProcess.id == live.process_id
            ).execute()
            if finalize and not queries.has_running_process(live.context.task_id):
                Task.update(status="inreview", updated_at=utc_now()).where(
                    Task.id == live.context.task_id
                ).execute()

    def kill_unsupervised(self, attempt_id: uuid.UUID) -> list[uuid.UUID]:
        """Rows of the attempt left ``running`` with no supervisor here become ``killed``; settle the task."""
        supervised = [pid for pid, lv in self._core.live.items() if lv.context.attempt_id == attempt_id]
        now = utc_now()
        with self._db.atomic():
            query = ExecutionProcess.select(ExecutionProcess.id).where(
                (ExecutionProcess.task_attempt == attempt_id) & (ExecutionProcess.status == "running")
            )
            if supervised:
                query = query.where(ExecutionProcess.id.not_in(supervised))
            ids = [row.id for row in query]
            if ids:
                ExecutionProcess.update(status="killed", completed_at=now, updated_at=now).where(
                    ExecutionProcess.id.in_(ids) & (ExecutionProcess.status == "running")
                ).execute()
            task_id = TaskAttempt.get_by_id(attempt_id).task_id
            if not queries.has_running_process(task_id):
                Task.update(status="inreview", updated_at=now).where(
                    (Task.id == task_id) & (Task.status == "inprogress")
                ).execute()
        return ids

    async def record_start_failure(
        self, attempt_id: uuid.UUID, profile: ExecutorProfileId, exc: Exception
    ) -> None:
        """An attempt that could not start: its first process ``failed`` with the reason in its log."""
        message = f"Failed to start execution: {getattr(exc, 'message', None) or exc}"
        log.warning("attempt %s: %s", attempt_id, message)

        def record() -> uuid.UUID | None:
            with self._db.connection(), self._db.atomic():
                attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
                if attempt is None:
                    return None
                task = Task.get_by_id(attempt.task_id)
                project = Project.get_by_id(task.project_id)
                action = actions.initial(
                    actions.task_prompt(task.title, task.description),
                    profile,
                    actions.cleanup_or_none(project.cleanup_script),
                )
                if project.setup_script and project.setup_script.strip():
                    action = actions.script(project.setup_script, actions.SETUP, action)
                now = utc_now()
                process = ExecutionProcess.create(
                    task_attempt=attempt.id,
                    status="failed",
                    run_reason=actions.run_reason_of(action),
                    executor_action=action,
                    completed_at=now,
                )
                self._core.logstore.append(process.id, "stderr", message + "\n")
                Task.update(status="inreview", updated_at=now).where(Task.id == task.id).execute()
                return process.id

        process_id = await asyncio.to_thread(record)
        if process_id is not None:
            await self._core.process_changed(process_id)
