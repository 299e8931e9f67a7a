"""Git operations on an attempt (spec §1.5): the database side (attempt → task → project, merges
rows, task status) around the stateless :class:`~anyon.services.git.GitService`.

The attempt's checkout is reached through :class:`~anyon.services.board.attempt_repos.AttemptRepos`: in cloud
mode its commits are imported first (:meth:`sync`) and writes to it run in its container; the server only
ever reads it through its host-owned view.

The branch status first has the remote refs it counts against fetched (a ``RemoteRefresh``, given by the
composition root; the GitHub package owns the transport and the throttle), always into the project
repository on the host.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from anyon.services.board.attempt_repos import AttemptRepos, Checkout
from anyon.services.board.changes import ChangeNotifier
from anyon.services.db.columns import utc_now
from anyon.services.db.database import Database
from anyon.services.db.models import Merge, Project, Task, TaskAttempt
from anyon.services.db.serialize import attempt_json, merge_json, task_json
from anyon.services.errors import NotFound, ServiceError
from anyon.services.git import GitService
from anyon.services.git.errors import GitServiceError
from anyon.services.git.file_search import FileSearch
from anyon.services.git.paths import PathPolicy
from anyon.services.git.remote_tips import fetched_ref, remote_tip_ahead_behind, tracking_branch
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.logs.diffstream import DiffTarget

log = logging.getLogger(__name__)

#: fetch (branch on the remote, local ref) pairs of a repository's remote; never raises
RemoteRefresh = Callable[[str, str, Sequence[tuple[str, str]]], Awaitable[None]]
PUSH_REMOTE = "origin"  # where pushes and pull requests go


class AttemptGitService:
    def __init__(
        self,
        database: Database,
        changes: ChangeNotifier,
        git: GitService,
        worktrees: WorktreeManager,
        file_search: FileSearch,
        repos: AttemptRepos,
        paths: PathPolicy | None = None,
        remote_refresh: RemoteRefresh | None = None,
    ) -> None:
        self._db = database
        self._changes = changes
        self._git = git
        self._worktrees = worktrees
        self._search = file_search
        self._repos = repos
        self._paths = paths or PathPolicy()
        self._refresh = remote_refresh

    # -- lookups --------------------------------------------------------------------------------
    def _rows(self, attempt_id: uuid.UUID) -> tuple[TaskAttempt, Task, Project]:
        with self._db.connection():
            attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
            if attempt is None:
                raise NotFound(f"Task attempt {attempt_id} not found")
            task = Task.get_by_id(attempt.task_id)
            project = Project.get_by_id(task.project_id)
        self._paths.check_stored(project.git_repo_path)  # still inside the roots, on every use
        return attempt, task, project

    def _project(self, project_id: uuid.UUID) -> Project:
        with self._db.connection():
            project = Project.get_or_none(Project.id == project_id)
        if project is None:
            raise NotFound(f"Project {project_id} not found")
        self._paths.check_stored(project.git_repo_path)
        return project

    def _worktree(self, attempt: TaskAttempt, task: Task, project: Project) -> str:
        """The attempt's worktree, recreated when it vanished (spec §6 recreate on demand)."""
        path = attempt.container_ref or self._worktrees.worktree_path(attempt.id, task.title)
        self._worktrees.ensure(project.git_repo_path, attempt.branch, path)
        if attempt.container_ref != path:
            with self._db.connection():
                TaskAttempt.update(container_ref=path).where(TaskAttempt.id == attempt.id).execute()
        return path

    async def _checkout(
        self, attempt_id: uuid.UUID, *, sync: bool = True
    ) -> tuple[Checkout, TaskAttempt, Task, Project]:
        """The attempt's checkout (recreated if it vanished), its commits brought to the project first."""

        def load() -> tuple[Checkout, TaskAttempt, Task, Project]:
            attempt, task, project = self._rows(attempt_id)
            worktree = self._worktree(attempt, task, project)
            checkout = Checkout(attempt.id, project.git_repo_path, worktree, attempt.branch)
            return checkout, attempt, task, project

        checkout, attempt, task, project = await asyncio.to_thread(load)
        if sync:
            await self._repos.sync(checkout)
        return checkout, attempt, task, project

    async def checkout(self, attempt_id: uuid.UUID) -> tuple[Checkout, TaskAttempt, Task, Project]:
        """The attempt's rows and checkout, its commits imported into the project repository.

        In cloud mode this is what a push reads: the project repository's branch, which only the
        server writes, never the attempt's own repository.
        """
        return await self._checkout(attempt_id)

    async def diff_source(self, attempt_id: uuid.UUID) -> tuple[DiffTarget, str | None]:
        """What the attempt's diff stream shows: its target, plus the merge commit when it is merged.

        Merged: the newest merge recorded a commit, the worktree is clean and the branch has no commit
        newer than that merge. The worktree is not recreated here: a diff only reads what is there.
        """
        attempt, task, project = await asyncio.to_thread(self._rows, attempt_id)
        worktree = attempt.container_ref or self._worktrees.worktree_path(attempt.id, task.title)
        if os.path.isdir(worktree):
            try:
                await self._repos.sync(Checkout(attempt.id, project.git_repo_path, worktree, attempt.branch))
            except GitServiceError as exc:
                log.warning("attempt %s: its commits could not be read for the diff: %s", attempt.id, exc)
        return await asyncio.to_thread(self._diff_source, attempt, task, project, worktree)

    def _diff_source(
        self, attempt: TaskAttempt, task: Task, project: Project, worktree: str
    ) -> tuple[DiffTarget, str | None]:
        attempt_id = attempt.id
        with self._db.connection():
            merge = (
                Merge.select()
                .where(Merge.task_attempt == attempt_id)
                .order_by(Merge.created_at.desc())
                .first()
            )
        view = self._worktrees.view(project.git_repo_path, worktree)
        target = DiffTarget(project.git_repo_path, worktree, attempt.branch, attempt.target_branch, view)
        if merge is None or merge.merge_commit is None or merge.created_at is None:
            return target, None
        return target, (merge.merge_commit if self._unchanged_since(target, merge.created_at) else None)

    def _unchanged_since(self, target: DiffTarget, merged_at: dt.datetime) -> bool:
        try:
            worktree, view = target.worktree_path, target.view
            if worktree and view and os.path.isdir(worktree) and not self._git.is_clean(view):
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
    async def branch_status(self, attempt_id: uuid.UUID) -> dict[str, Any]:
        checkout, attempt, _task, project = await self._checkout(attempt_id)

        def merges() -> list[dict[str, Any]]:
            with self._db.connection():
                rows = Merge.select().where(Merge.task_attempt == attempt.id)
                return [merge_json(m) for m in rows.order_by(Merge.created_at.desc())]

        merge_rows = await asyncio.to_thread(merges)
        newest = merge_rows[0] if merge_rows else None
        open_pr = bool(newest and newest["type"] == "pr" and newest["pr_info"]["status"] == "open")
        await self._refresh_remote_refs(project.git_repo_path, attempt, open_pr)
        view = await asyncio.to_thread(self._repos.view, checkout)
        status: dict[str, Any] = await asyncio.to_thread(
            self._git.branch_status, project.git_repo_path, view, attempt.branch, attempt.target_branch
        )
        if self._repos.isolated:  # rebases and merges in progress live in the attempt's own repository
            status.update(await self._repos.conflict_state(checkout))
        status["merges"] = merge_rows
        if open_pr:
            # against the newest of what was last pushed and what was fetched from the remote since
            try:
                counts = await asyncio.to_thread(
                    remote_tip_ahead_behind, project.git_repo_path, attempt.branch, PUSH_REMOTE
                )
            except GitServiceError:
                counts = None
            if counts is not None:
                status["remote_commits_ahead"], status["remote_commits_behind"] = counts
        return status

    async def _refresh_remote_refs(self, repo_path: str, attempt: TaskAttempt, open_pr: bool) -> None:
        """Fetch what the status counts against: a remote-tracking target, the open PR's pushed branch.

        A target that is some attempt's branch is left alone: its ``refs/remotes/…`` is that branch's
        push lease, which a fetch must not move (see ``git.remote_tips``).
        """
        if self._refresh is None:
            return

        def wanted() -> dict[str, list[tuple[str, str]]]:
            refs: dict[str, list[tuple[str, str]]] = {}
            try:
                target = tracking_branch(repo_path, attempt.target_branch)
            except GitServiceError:
                target = None
            if target is not None:
                remote, branch = target
                with self._db.connection():
                    leased = TaskAttempt.select(TaskAttempt.id).where(TaskAttempt.branch == branch).exists()
                if not leased:
                    refs.setdefault(remote, []).append((branch, f"refs/remotes/{remote}/{branch}"))
            if open_pr:
                ref = fetched_ref(PUSH_REMOTE, attempt.branch)
                refs.setdefault(PUSH_REMOTE, []).append((attempt.branch, ref))
            return refs

        refresh = self._refresh
        fetches = await asyncio.to_thread(wanted)
        await asyncio.gather(*(refresh(repo_path, remote, refs) for remote, refs in fetches.items()))

    async def merge(self, attempt_id: uuid.UUID) -> None:
        """Squash-merge into the target, record a ``direct`` merge, set the task ``done``."""
        checkout, attempt, task, project = await self._checkout(attempt_id)
        message = f"{task.title} (anyon {str(task.id).replace('-', '')[:8]})"
        if task.description and task.description.strip():
            message += f"\n\n{task.description}"
        sha = await asyncio.to_thread(
            lambda: self._git.squash_merge(
                project.git_repo_path,
                attempt.branch,
                attempt.target_branch,
                message,
                update_linked=not self._repos.isolated,
            )
        )

        def record() -> None:
            with self._db.connection(), self._db.atomic():
                Merge.create(
                    task_attempt=attempt.id,
                    merge_type="direct",
                    merge_commit=sha,
                    target_branch_name=attempt.target_branch,
                )
                Task.update(status="done", updated_at=utc_now()).where(Task.id == task.id).execute()
            self._changes.task_changed(task.id)

        await asyncio.to_thread(record)
        try:  # the attempt's own repository follows its branch to the squash commit
            await self._repos.sync(checkout)
        except GitServiceError as exc:
            log.warning("attempt %s: its repository could not follow the merge: %s", attempt_id, exc)

    async def rebase(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> None:
        checkout, attempt, _task, project = await self._checkout(attempt_id, sync=False)
        new_base = body.get("new_base_branch") or attempt.target_branch
        old_base = body.get("old_base_branch") or attempt.target_branch
        if not await asyncio.to_thread(self._git.branch_exists, project.git_repo_path, new_base):
            raise ServiceError(f"Branch '{new_base}' does not exist")
        await self._repos.rebase(checkout, new_base, old_base)
        await asyncio.to_thread(self._set_target, attempt.id, new_base)

    def _set_target(self, attempt_id: uuid.UUID, target: str) -> None:
        with self._db.connection():
            TaskAttempt.update(target_branch=target, updated_at=utc_now()).where(
                TaskAttempt.id == attempt_id
            ).execute()

    async def abort_conflicts(self, attempt_id: uuid.UUID) -> None:
        checkout, _attempt, _task, _project = await self._checkout(attempt_id, sync=False)
        await self._repos.abort_conflicts(checkout)

    def change_target_branch(self, attempt_id: uuid.UUID, new_target: str) -> dict[str, Any]:
        attempt, _task, project = self._rows(attempt_id)
        if not new_target.strip() or not self._git.branch_exists(project.git_repo_path, new_target):
            raise ServiceError(f"Branch '{new_target}' does not exist")
        self._set_target(attempt.id, new_target)
        ahead, behind = self._git.ahead_behind(project.git_repo_path, attempt.branch, new_target)
        return {"new_target_branch": new_target, "status": [ahead, behind]}

    async def rename_branch(self, attempt_id: uuid.UUID, new_name: str) -> dict[str, Any]:
        name = new_name.strip()
        if not name:
            raise ServiceError("Branch name cannot be empty")
        checkout, _attempt, _task, project = await self._checkout(attempt_id, sync=False)
        if (await self._repos.conflict_state(checkout)).get("is_rebase_in_progress"):
            raise ServiceError("Cannot rename the branch while a rebase is in progress")
        if await asyncio.to_thread(self._git.branch_exists, project.git_repo_path, name):
            raise ServiceError(f"A branch named '{name}' already exists")
        if await asyncio.to_thread(self._has_open_pr, checkout.attempt_id):
            raise ServiceError("Cannot rename the branch while its pull request is open")
        await self._repos.rename_branch(checkout, name)

        def record() -> None:
            with self._db.connection(), self._db.atomic():
                TaskAttempt.update(branch=name, updated_at=utc_now()).where(
                    TaskAttempt.id == checkout.attempt_id
                ).execute()
                # child attempts that targeted the old name follow it
                TaskAttempt.update(target_branch=name).where(
                    TaskAttempt.target_branch == checkout.branch
                ).execute()

        await asyncio.to_thread(record)
        return {"branch": name}

    def _has_open_pr(self, attempt_id: uuid.UUID) -> bool:
        with self._db.connection():
            return bool(
                Merge.select(Merge.id)
                .where(
                    (Merge.task_attempt == attempt_id)
                    & (Merge.merge_type == "pr")
                    & (Merge.pr_status == "open")
                )
                .exists()
            )

    def commit_info(self, attempt_id: uuid.UUID, sha: str) -> dict[str, str]:
        _attempt, _task, project = self._rows(attempt_id)
        return self._git.commit_info(project.git_repo_path, sha)

    async def commit_compare(self, attempt_id: uuid.UUID, sha: str) -> dict[str, Any]:
        checkout, _attempt, _task, _project = await self._checkout(attempt_id)
        view = await asyncio.to_thread(self._repos.view, checkout)
        result: dict[str, Any] = await asyncio.to_thread(self._git.commit_compare, view, sha)
        return result

    async def delete_file(self, attempt_id: uuid.UUID, file_path: str) -> None:
        checkout, _attempt, _task, _project = await self._checkout(attempt_id, sync=False)
        await self._repos.delete_file(checkout, file_path)

    def children(self, attempt_id: uuid.UUID) -> dict[str, Any]:
        """``GET …/children``: the task whose attempt spawned this attempt's task, and the tasks it spawned.

        The parent is reached through the task's ``parent_task_attempt`` (null when the task was made by
        hand, or when the attempt that made it is gone); the children are the tasks made from *this*
        attempt, newest first.
        """
        attempt, task, _project = self._rows(attempt_id)
        with self._db.connection():
            parent = None
            if task.parent_task_attempt_id is not None:
                parent = (
                    Task.select()
                    .join(TaskAttempt, on=(TaskAttempt.task == Task.id))
                    .where(TaskAttempt.id == task.parent_task_attempt_id)
                    .first()
                )
            children = list(
                Task.select().where(Task.parent_task_attempt == attempt.id).order_by(Task.created_at.desc())
            )
        return {
            "parent_task": task_json(parent) if parent is not None else None,
            "current_attempt": attempt_json(attempt),
            "children": [task_json(c) for c in children],
        }
