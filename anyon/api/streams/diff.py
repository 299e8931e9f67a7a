"""``GET /api/task-attempts/{id}/diff/ws?stats_only=``: the Diffs tab (spec §2.4).

Live mode: one ``add /entries/<escaped path>`` frame per changed file, then add/remove batches from the
worktree watcher (:mod:`anyon.services.diffstream`) until the client leaves. Merged mode (the newest merge
has a commit, the worktree is clean and the branch has no commit newer than that merge): the diff of the
merge commit, then ``{"finished":true}``. Git or watcher errors end the stream with close code 1011;
errors are not sent as frames.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass

import falcon.asgi
import pygit2

from anyon.api.envelope import ApiError
from anyon.api.http import run_sync
from anyon.api.streams.ws import StreamSender, deny, serve
from anyon.api.validation import query_bool
from anyon.services import jsonpatch as jp
from anyon.services.container import Services
from anyon.services.db.models import Merge, Project, Task, TaskAttempt
from anyon.services.diffstream import AttemptDiffStream, DiffTarget
from anyon.services.git.errors import GitServiceError

DEFAULT_DEBOUNCE_MS = 200


@dataclass(frozen=True)
class _Attempt:
    target: DiffTarget
    merge_commit: str | None
    merged_at: dt.datetime | None


class DiffStream:
    def __init__(self, services: Services, *, debounce_ms: int | None = None) -> None:
        self._services = services
        self._debounce_ms = debounce_ms if debounce_ms is not None else DEFAULT_DEBOUNCE_MS

    def _load(self, attempt_id: uuid.UUID) -> _Attempt | None:
        with self._services.database.connection():
            attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
            if attempt is None:
                return None
            task = Task.get_by_id(attempt.task_id)
            project = Project.get_by_id(task.project_id)
            merge = (
                Merge.select()
                .where(Merge.task_attempt == attempt_id)
                .order_by(Merge.created_at.desc())
                .first()
            )
        worktree = attempt.container_ref or self._services.worktrees.worktree_path(attempt.id, task.title)
        commit = merge.merge_commit if merge is not None else None
        return _Attempt(
            DiffTarget(project.git_repo_path, worktree, attempt.branch, attempt.target_branch),
            commit,
            merge.created_at if merge is not None else None,
        )

    def _is_merged(self, info: _Attempt) -> bool:
        """Merged mode: the newest merge has a commit and nothing changed on the attempt since."""
        if info.merge_commit is None or info.merged_at is None:
            return False
        git = self._services.git
        t = info.target
        try:
            if t.worktree_path and os.path.isdir(t.worktree_path) and not git.is_clean(t.worktree_path):
                return False
            repo = pygit2.Repository(t.repo_path)
            tip = repo.revparse_single(f"refs/heads/{t.branch}").peel(pygit2.Commit)
        except (GitServiceError, KeyError, ValueError, pygit2.GitError):
            return True  # the branch is gone (cleaned up after the merge): the merge commit is the answer
        tip_time = dt.datetime.fromtimestamp(tip.commit_time, dt.UTC)
        merged_at = info.merged_at if info.merged_at.tzinfo else info.merged_at.replace(tzinfo=dt.UTC)
        return tip_time <= merged_at

    async def on_websocket(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, attempt_id: str
    ) -> None:
        try:
            aid = uuid.UUID(attempt_id)
        except ValueError:
            return await deny(req, ws, 400, f"BadRequest: attempt id is not a valid UUID: {attempt_id!r}")
        try:
            stats_only = query_bool(req.get_param("stats_only"), "stats_only")
        except ApiError as exc:
            return await deny(req, ws, exc.status, exc.message)
        info = await run_sync(self._load, aid)
        if info is None:
            return await deny(req, ws, 404, f"Task attempt {aid} not found")
        if await run_sync(self._is_merged, info):
            await serve(ws, lambda sender: self._merged(sender, info, stats_only))
            return
        stream = AttemptDiffStream(
            self._services.git, info.target, stats_only=stats_only, debounce_ms=self._debounce_ms
        )
        try:
            await serve(ws, lambda sender: self._live(sender, stream))
        finally:
            stream.close()

    async def _merged(self, sender: StreamSender, info: _Attempt, stats_only: bool) -> None:
        assert info.merge_commit is not None
        diffs = await run_sync(
            self._services.git.diff_commit, info.target.repo_path, info.merge_commit, stats_only
        )
        for d in diffs:
            await sender.ops([jp.diff_entry_add(jp.diff_key(d), d)])
        await sender.finished()

    async def _live(self, sender: StreamSender, stream: AttemptDiffStream) -> None:
        try:
            for op in await stream.initial():
                await sender.ops([op])
            async for ops in stream.changes():
                await sender.ops(ops)
        finally:
            stream.close()
