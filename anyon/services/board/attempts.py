"""Reads of task attempts and execution processes (creation comes with the execution engine)."""

from __future__ import annotations

import uuid
from typing import Any

from anyon.services.db import queries
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess, Task, TaskAttempt
from anyon.services.db.serialize import attempt_json, process_json
from anyon.services.errors import NotFound


class AttemptService:
    def __init__(self, database: Database) -> None:
        self._db = database

    def list(self, task_id: uuid.UUID | None) -> list[dict[str, Any]]:
        with self._db.connection():
            return [attempt_json(a) for a in queries.attempts_for_task(task_id)]

    def get_row(self, attempt_id: uuid.UUID) -> TaskAttempt:
        with self._db.connection():
            attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
        if attempt is None:
            raise NotFound(f"Task attempt {attempt_id} not found")
        return attempt

    def get(self, attempt_id: uuid.UUID) -> dict[str, Any]:
        return attempt_json(self.get_row(attempt_id))

    def exists(self, attempt_id: uuid.UUID) -> bool:
        with self._db.connection():
            return TaskAttempt.select(TaskAttempt.id).where(TaskAttempt.id == attempt_id).exists()

    def container_info(self, container_ref: str) -> dict[str, Any]:
        """``GET /api/containers/info?ref=``: which attempt, task and project own a worktree path."""
        with self._db.connection():
            attempt = TaskAttempt.get_or_none(TaskAttempt.container_ref == container_ref)
            if attempt is None:
                raise NotFound(f"No attempt owns {container_ref!r}")
            task = Task.get_by_id(attempt.task_id)
        return {"attempt_id": str(attempt.id), "task_id": str(task.id), "project_id": str(task.project_id)}


class ProcessService:
    def __init__(self, database: Database) -> None:
        self._db = database

    def list(self, attempt_id: uuid.UUID, show_soft_deleted: bool) -> list[dict[str, Any]]:
        with self._db.connection():
            return [process_json(p) for p in queries.processes_for_attempt(attempt_id, show_soft_deleted)]

    def get_row(self, process_id: uuid.UUID) -> ExecutionProcess:
        with self._db.connection():
            process = ExecutionProcess.get_or_none(ExecutionProcess.id == process_id)
        if process is None:
            raise NotFound(f"Execution process {process_id} not found")
        return process

    def get(self, process_id: uuid.UUID) -> dict[str, Any]:
        return process_json(self.get_row(process_id))

    def get_row_and_worktree(self, process_id: uuid.UUID) -> tuple[ExecutionProcess, str | None]:
        """The process and its attempt's worktree (the log normaliser resolves file paths against it)."""
        with self._db.connection():
            process = ExecutionProcess.get_or_none(ExecutionProcess.id == process_id)
            if process is None:
                raise NotFound(f"Execution process {process_id} not found")
            attempt = TaskAttempt.get_or_none(TaskAttempt.id == process.task_attempt_id)
        return process, (attempt.container_ref if attempt is not None else None)
