"""Tasks: create/update/delete with the spec §1.4 rules, and the change events the board lives on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from anyon.services.board.changes import ChangeNotifier
from anyon.services.db import queries
from anyon.services.db.database import Database
from anyon.services.db.models import Image, Project, Task, TaskAttempt, TaskImage
from anyon.services.db.readcache import ReadCache
from anyon.services.db.serialize import task_json
from anyon.services.errors import Conflict, NotFound, ServiceError

TASK_STATUSES = ("todo", "inprogress", "inreview", "done", "cancelled")
T = TypeVar("T")


class TaskService:
    def __init__(self, database: Database, changes: ChangeNotifier, cache: ReadCache | None = None) -> None:
        self._db = database
        self._changes = changes
        self._cache = cache or ReadCache(None)

    def list_for_project(self, project_id: uuid.UUID) -> list[dict[str, Any]]:
        """The board; served from the read cache while the database is unchanged (copies: callers edit)."""
        rows = self._cache.fetch(("board", project_id), lambda: self._board(project_id))
        return [dict(row) for row in rows]

    def _board(self, project_id: uuid.UUID) -> list[dict[str, Any]]:
        with self._db.connection():
            return queries.tasks_with_status(project_id)

    def get_row(self, task_id: uuid.UUID) -> Task:
        with self._db.connection():
            task = Task.get_or_none(Task.id == task_id)
        if task is None:
            raise NotFound(f"Task {task_id} not found")
        return task

    def get(self, task_id: uuid.UUID) -> dict[str, Any]:
        return task_json(self.get_row(task_id))

    def _check_images(self, image_ids: list[str]) -> list[uuid.UUID]:
        ids = [uuid.UUID(i) for i in image_ids]
        if ids:
            found = {row.id for row in Image.select(Image.id).where(Image.id.in_(ids))}
            missing = [str(i) for i in ids if i not in found]
            if missing:
                raise ServiceError(f"Unknown image id(s): {', '.join(missing)}")
        return ids

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Insert the task (and its image links) in one transaction, then publish it to the board."""
        return self.create_with(body, None)[0]

    def create_with(
        self, body: dict[str, Any], within: Callable[[Task], T] | None
    ) -> tuple[dict[str, Any], T | None]:
        """``create``, running ``within(task)`` inside the same transaction before it commits.

        Whatever ``within`` raises rolls the task back too: ``create-and-start`` inserts its attempt
        there, so a refused branch or profile leaves no task behind. The board hears of the task only
        after the commit.
        """
        project_id = uuid.UUID(body["project_id"])
        title = body["title"].strip()
        if not title:
            raise ServiceError("Task title cannot be empty")
        description = body.get("description")
        if description is not None and not description.strip():
            description = None
        with self._db.connection(), self._db.atomic():
            if not Project.select().where(Project.id == project_id).exists():
                raise ServiceError(f"Project {project_id} does not exist")
            parent = body.get("parent_task_attempt")
            if (
                parent is not None
                and not TaskAttempt.select().where(TaskAttempt.id == uuid.UUID(parent)).exists()
            ):
                raise ServiceError(f"Parent task attempt {parent} does not exist")
            image_ids = self._check_images(body.get("image_ids") or [])
            task = Task.create(
                project=project_id,
                title=title,
                description=description,
                status="todo",
                parent_task_attempt=uuid.UUID(parent) if parent else None,
            )
            for image_id in image_ids:
                TaskImage.create(task=task.id, image=image_id)
            extra = within(task) if within is not None else None
        self._changes.task_changed(task.id)
        return task_json(task), extra

    def update(self, task_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        status = body.get("status")
        if status is not None and status not in TASK_STATUSES:
            raise ServiceError(f"Invalid task status {status!r}: expected one of {', '.join(TASK_STATUSES)}")
        with self._db.connection(), self._db.atomic():
            task = Task.get_or_none(Task.id == task_id)
            if task is None:
                raise NotFound(f"Task {task_id} not found")
            if body.get("title") is not None:
                title = body["title"].strip()
                if not title:
                    raise ServiceError("Task title cannot be empty")
                task.title = title
            if body.get("description") is not None:
                task.description = body["description"] if body["description"].strip() else None
            if status is not None:
                task.status = status
            parent = body.get("parent_task_attempt")
            if parent is not None:
                if not TaskAttempt.select().where(TaskAttempt.id == uuid.UUID(parent)).exists():
                    raise ServiceError(f"Parent task attempt {parent} does not exist")
                task.parent_task_attempt = uuid.UUID(parent)
            if body.get("image_ids") is not None:
                image_ids = self._check_images(body["image_ids"])
                TaskImage.delete().where(TaskImage.task == task.id).execute()
                for image_id in image_ids:
                    TaskImage.create(task=task.id, image=image_id)
            task.save()
        self._changes.task_changed(task.id)
        return task_json(task)

    def delete(self, task_id: uuid.UUID) -> tuple[list[TaskAttempt], str]:
        """Delete the task (cascade) unless a process runs.

        Returns its attempts and the project's repository path, for the worktree/container cleanup the
        caller runs in the background.
        """
        with self._db.connection(), self._db.atomic():
            task = Task.get_or_none(Task.id == task_id)
            if task is None:
                raise NotFound(f"Task {task_id} not found")
            if queries.has_running_process(task_id):
                raise Conflict("Task has running execution processes. Stop them before deleting the task.")
            attempts = list(TaskAttempt.select().where(TaskAttempt.task == task_id))
            project_id = task.project_id
            repo_path = Project.get_by_id(project_id).git_repo_path
            if attempts:
                Task.update(parent_task_attempt=None).where(
                    Task.parent_task_attempt.in_([a.id for a in attempts])
                ).execute()
            task.delete_instance()
        self._changes.task_deleted(project_id, task_id)
        return attempts, repo_path
