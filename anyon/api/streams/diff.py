"""``GET /api/task-attempts/{id}/diff/ws?stats_only=``: the Diffs tab (spec §2.4).

Live mode: one ``add /entries/<escaped path>`` frame per changed file, then add/remove batches from the
worktree watcher (:mod:`anyon.services.logs.diffstream`) until the client leaves. Merged mode (the newest
merge has a commit, the worktree is clean and the branch has no commit newer than that merge): the diff of the
merge commit, then ``{"finished":true}``. Git or watcher errors end the stream with close code 1011;
errors are not sent as frames.
"""

from __future__ import annotations

import uuid

import falcon.asgi

from anyon.api.envelope import ApiError
from anyon.api.http import run_sync
from anyon.api.streams.ws import StreamSender, deny, serve
from anyon.api.validation import query_bool
from anyon.services.container import Services
from anyon.services.errors import NotFound
from anyon.services.logs import jsonpatch as jp
from anyon.services.logs.diffstream import AttemptDiffStream

DEFAULT_DEBOUNCE_MS = 200


class DiffStream:
    def __init__(self, services: Services, *, debounce_ms: int | None = None) -> None:
        self._services = services
        self._debounce_ms = debounce_ms if debounce_ms is not None else DEFAULT_DEBOUNCE_MS

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
        try:
            target, merge_commit = await self._services.attempt_git.diff_source(aid)
        except NotFound as exc:
            return await deny(req, ws, 404, exc.message)
        if merge_commit is not None:
            await serve(ws, lambda sender: self._merged(sender, target.repo_path, merge_commit, stats_only))
            return
        stream = AttemptDiffStream(
            self._services.git, target, stats_only=stats_only, debounce_ms=self._debounce_ms
        )
        try:
            await serve(ws, lambda sender: self._live(sender, stream))
        finally:
            stream.close()

    async def _merged(
        self, sender: StreamSender, repo_path: str, merge_commit: str, stats_only: bool
    ) -> None:
        diffs = await run_sync(self._services.git.diff_commit, repo_path, merge_commit, stats_only)
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
