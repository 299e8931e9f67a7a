"""Git operations on an attempt (spec §1.5): the database side (attempt → task → project, merges
rows, task status) around the stateless :class:`~anyon.services.git.GitService`."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any

from anyon.services.changes import ChangeNotifier
from anyon.services.db.database import Database
from anyon.services.db.models import Merge, Project, Task, TaskAttempt, utc_now
from anyon.services.db.serialize import attempt_json, merge_json, task_json
from anyon.services.diffstream import DiffTarget
from anyon.services.errors import NotFound, ServiceError
from anyon.services.file_search import FileSearch
from anyon.services.git import GitService
from anyon.services.git.errors import GitServiceError
from anyon.services.worktrees import WorktreeManager


class AttemptGitService:
    def __init__(
        self,
        database: Database,
        changes: ChangeNotifier,
        git: GitService,
        worktrees: WorktreeManager,
        file_search: FileSearch,
    ) -> None:
        self._db = database
        self._changes = changes
        self._git = git
        self._worktrees = worktrees
        self._search = file_search

    # -- lookups --------------------------------------------------------------------------------
    def _rows(self, attempt_id: uuid.UUID) -> tuple[TaskAttempt, Task, Project]:
        with self._db.connection():
            attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
            if attempt is None:
                raise NotFound(f"Task attempt {attempt_id} not found")
            task = Task.get_by_id(attempt.task_id)
            return attempt, task, Project.get_by_id(task.project_id)

    def _project(self, project_id: uuid.UUID) -> Project:
        with self._db.connection():
            project = Project.get_or_none(Project.id == project_id)
        if project is None:
            raise NotFound(f"Project {project_id} not found")
        return project

    def _worktree(self, attempt: TaskAttempt, task: Task, project: Project) -> str:
        """The attempt's worktree, recreated when it vanished (spec §6 recreate on demand)."""
        path = attempt.container_ref or self._worktrees.worktree_path(attempt.id, task.title)
        self._worktrees.ensure(project.git_repo_path, attempt.branch, path)
        if attempt.container_ref != path:
            with self._db.connection():
                TaskAttempt.update(container_ref=path).where(TaskAttempt.id == attempt.id).execute()
        return path

    def diff_source(self, attempt_id: uuid.UUID) -> tuple[DiffTarget, str | None]:
        """What the attempt's diff stream shows: its target, plus the merge commit when it is merged.

        Merged: the newest merge recorded a commit, the worktree is clean and the branch has no commit
        newer than that merge. The worktree is not recreated here: a diff only reads what is there.
        """
        attempt, task, project = self._rows(attempt_id)
        with self._db.connection():
            merge = (
                Merge.select()
                .where(Merge.task_attempt == attempt_id)
                .order_by(Merge.created_at.desc())
                .first()
            )
        worktree = attempt.container_ref or self._worktrees.worktree_path(attempt.id, task.title)
        target = DiffTarget(project.git_repo_path, worktree, attempt.branch, attempt.target_branch)
        if merge is None or merge.merge_commit is None or merge.created_at is None:
            return target, None
        return target, (merge.merge_commit if self._unchanged_since(target, merge.created_at) else None)

    def _unchanged_since(self, target: DiffTarget, merged_at: dt.datetime) -> bool:
        try:
            worktree = target.worktree_path
            if worktree and os.path.isdir(worktree) and not self._git.is_clean(worktree):
                return False
            tip_time = self._git.branch_commit_time(target.repo_path, target.branch)
        except GitServiceError:
            return True  # the branch is gone (cleaned up after the merge): the merge commit is the answer
        if tip_time is None:
            return True
        return tip_time <= (merged_at if merged_at.tzinfo else merged_at.replace(tzinfo=dt.UTC))

    # -- project level --------------------------------------------------------------------------
    def branches(self, project_id: uuid.UUID) -> list[dict[str, Any]]:
        return self._git.branches(self._project(project_id).git_repo_path)

    def search(self, project_id: uuid.UUID, q: str, mode: str) -> list[dict[str, Any]]:
        return self._search.search(self._project(project_id).git_repo_path, q, mode)

    # -- attempt level --------------------------------------------------------------------------
    def branch_status(self, attempt_id: uuid.UUID) -> dict[str, Any]:
        attempt, task, project = self._rows(attempt_id)
        worktree = self._worktree(attempt, task, project)
        status = self._git.branch_status(
            project.git_repo_path, worktree, attempt.branch, attempt.target_branch
        )
        with self._db.connection():
            merges = list(
                Merge.select().where(Merge.task_attempt == attempt.id).order_by(Merge.created_at.desc())
            )
        status["merges"] = [merge_json(m) for m in merges]
        return status

    def merge(self, attempt_id: uuid.UUID) -> None:
        """Squash-merge into the target, record a ``direct`` merge, set the task ``done``."""
        attempt, task, project = self._rows(attempt_id)
        self._worktree(attempt, task, project)
        message = f"{task.title} (anyon {str(task.id).replace('-', '')[:8]})"
        if task.description and task.description.strip():
            message += f"\n\n{task.description}"
        sha = self._git.squash_merge(project.git_repo_path, attempt.branch, attempt.target_branch, message)
        with self._db.connection(), self._db.atomic():
            Merge.create(
                task_attempt=attempt.id,
                merge_type="direct",
                merge_commit=sha,
                target_branch_name=attempt.target_branch,
            )
            Task.update(status="done", updated_at=utc_now()).where(Task.id == task.id).execute()
        self._changes.task_changed(task.id)

    def rebase(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> None:
        attempt, task, project = self._rows(attempt_id)
        worktree = self._worktree(attempt, task, project)
        new_base = body.get("new_base_branch") or attempt.target_branch
        old_base = body.get("old_base_branch") or attempt.target_branch
        if not self._git.branch_exists(project.git_repo_path, new_base):
            raise ServiceError(f"Branch '{new_base}' does not exist")
        self._git.rebase(project.git_repo_path, worktree, attempt.branch, new_base, old_base)
        self._set_target(attempt.id, new_base)

    def _set_target(self, attempt_id: uuid.UUID, target: str) -> None:
        with self._db.connection():
            TaskAttempt.update(target_branch=target, updated_at=utc_now()).where(
                TaskAttempt.id == attempt_id
            ).execute()

    def abort_conflicts(self, attempt_id: uuid.UUID) -> None:
        attempt, task, project = self._rows(attempt_id)
        self._git.abort_conflicts(self._worktree(attempt, task, project))

    def change_target_branch(self, attempt_id: uuid.UUID, new_target: str) -> dict[str, Any]:
        attempt, _task, project = self._rows(attempt_id)
        if not new_target.strip() or not self._git.branch_exists(project.git_repo_path, new_target):
            raise ServiceError(f"Branch '{new_target}' does not exist")
        self._set_target(attempt.id, new_target)
        ahead, behind = self._git.ahead_behind(project.git_repo_path, attempt.branch, new_target)
        return {"new_target_branch": new_target, "status": [ahead, behind]}

    def rename_branch(self, attempt_id: uuid.UUID, new_name: str) -> dict[str, Any]:
        attempt, task, project = self._rows(attempt_id)
        name = new_name.strip()
        if not name:
            raise ServiceError("Branch name cannot be empty")
        worktree = self._worktree(attempt, task, project)
        if self._git.conflict_state(worktree).get("is_rebase_in_progress"):
            raise ServiceError("Cannot rename the branch while a rebase is in progress")
        if self._git.branch_exists(project.git_repo_path, name):
            raise ServiceError(f"A branch named '{name}' already exists")
        self._git.rename_branch(project.git_repo_path, attempt.branch, name, worktree)
        with self._db.connection(), self._db.atomic():
            TaskAttempt.update(branch=name, updated_at=utc_now()).where(
                TaskAttempt.id == attempt.id
            ).execute()
            # child attempts that targeted the old name follow it
            TaskAttempt.update(target_branch=name).where(
                TaskAttempt.target_branch == attempt.branch
            ).execute()
        return {"branch": name}

    def commit_info(self, attempt_id: uuid.UUID, sha: str) -> dict[str, str]:
        _attempt, _task, project = self._rows(attempt_id)
        return self._git.commit_info(project.git_repo_path, sha)

    def commit_compare(self, attempt_id: uuid.UUID, sha: str) -> dict[str, Any]:
        attempt, task, project = self._rows(attempt_id)
        return self._git.commit_compare(self._worktree(attempt, task, project), sha)

    def delete_file(self, attempt_id: uuid.UUID, file_path: str) -> None:
        attempt, task, project = self._rows(attempt_id)
        self._git.delete_file(self._worktree(attempt, task, project), file_path)

    def children(self, attempt_id: uuid.UUID) -> dict[str, Any]:
        attempt, task, _project = self._rows(attempt_id)
        with self._db.connection():
            children = list(
                Task.select().where(Task.parent_task_attempt == attempt.id).order_by(Task.created_at.desc())
            )
        return {
            "parent_task": task_json(task),
            "current_attempt": attempt_json(attempt),
            "children": [task_json(c) for c in children],
        }
