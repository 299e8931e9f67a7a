"""State streams: the board (spec §2.2), an attempt's process timeline (§2.3) and drafts (§2.8).

Each stream subscribes to its bus topic *first*, then reads the snapshot, then forwards live ops, so no
change committed in between is lost (one may arrive twice, which is harmless: ops are idempotent writes of
whole records).

Backpressure: the bus gives every subscriber a bounded queue. A client that reads too slowly makes its
queue overflow; the bus then drops the queue and the stream answers the resulting ``Resync`` by sending a
fresh snapshot (``replace /<collection>``). A slow client therefore costs at most one queue of memory and
never holds up the producer or the other clients.

Op hygiene: the UI applies patches with ``rfc6902``, whose ``replace`` of a missing member and ``remove``
of a missing member fail. Every stream tracks which ids its client holds and sends ``add`` for a record the
client has not seen yet and drops removals of records it never had.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import falcon.asgi

from anyon.api.envelope import ApiError
from anyon.api.http import run_sync
from anyon.api.streams.ws import StreamSender, deny, serve
from anyon.api.validation import query_bool
from anyon.services.board import events as ev
from anyon.services.board.drafts import stream_entry
from anyon.services.container import Services
from anyon.services.logs import jsonpatch as jp
from anyon.services.logs.jsonpatch import Op

JsonDict = dict[str, Any]


def _uuid_param(req: falcon.asgi.Request, name: str) -> uuid.UUID | str:
    """The UUID query parameter ``name``, or an error message when missing or malformed."""
    raw = req.get_param(name)
    if not raw:
        return f"BadRequest: the query parameter {name} is required"
    try:
        return uuid.UUID(raw)
    except ValueError:
        return f"BadRequest: {name} is not a valid UUID: {raw!r}"


class CollectionTracker:
    """The ids one client holds under ``/<collection>``; rewrites ops so that they apply (module doc)."""

    def __init__(self, collection: str, new_record: Callable[[str], Any] | None = None) -> None:
        self.collection = collection
        self.known: set[str] = set()
        # for documents whose ops go below a record (drafts): the record to create for an unseen id
        self._new_record = new_record

    def snapshot(self, records: dict[str, Any]) -> list[Op]:
        self.known = set(records)
        return [jp.replace(jp.pointer(self.collection), records)]

    def fix(self, ops: list[Op], transform: Callable[[Op, str], Op | None] | None = None) -> list[Op]:
        out: list[Op] = []
        for op in ops:
            try:
                segments = jp.split_pointer(op.get("path", ""))
            except jp.PatchError:
                continue
            if not segments or segments[0] != self.collection:
                continue  # not this document's collection
            if len(segments) == 1:
                value = op.get("value")
                self.known = set(value) if isinstance(value, dict) else set()
                out.append(op)
                continue
            ident = segments[1]
            if transform is not None and len(segments) == 2:
                transformed = transform(op, ident)
                if transformed is None:
                    continue
                op = transformed
            kind = op.get("op")
            if len(segments) == 2 and kind == "remove":
                if ident not in self.known:
                    continue
                self.known.discard(ident)
            elif len(segments) == 2 and kind in ("add", "replace"):
                if ident not in self.known:
                    op = jp.add(op["path"], op.get("value"))
                    self.known.add(ident)
            elif ident not in self.known:
                if self._new_record is None:
                    continue  # a deeper path under a record the client does not have
                out.append(jp.add(jp.pointer(self.collection, ident), self._new_record(ident)))
                self.known.add(ident)
            out.append(op)
        return out


async def _follow(
    sender: StreamSender,
    sub: ev.Subscription,
    snapshot: Callable[[], Any],
    tracker: CollectionTracker,
    transform: Callable[[Op, str], Op | None] | None = None,
) -> None:
    """Snapshot, then live ops; a fresh snapshot whenever the subscription reports it fell behind."""
    try:
        await sender.ops(tracker.snapshot(await run_sync(snapshot)))
        while True:
            try:
                event = await sub.__anext__()
            except ev.Resync:
                await sender.ops(tracker.snapshot(await run_sync(snapshot)))
                continue
            except StopAsyncIteration:
                return  # the bus closed (server shutdown)
            await sender.ops(tracker.fix(list(event.ops), transform))
    finally:
        sub.close()


class TasksStream:
    """``GET /api/tasks/stream/ws?project_id=``: ``{tasks:{id: TaskWithAttemptStatus}}``."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def _snapshot(self, project_id: uuid.UUID) -> JsonDict:
        return {t["id"]: t for t in self._services.tasks.list_for_project(project_id)}

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        project_id = _uuid_param(req, "project_id")
        if isinstance(project_id, str):
            return await deny(req, ws, 400, project_id)
        if not await run_sync(self._services.projects.exists, project_id):
            return await deny(req, ws, 404, f"Project {project_id} not found")
        sub = self._services.events.subscribe(ev.tasks_topic(str(project_id)))
        await serve(
            ws,
            lambda sender: _follow(
                sender, sub, lambda: self._snapshot(project_id), CollectionTracker("tasks")
            ),
        )
        sub.close()


class ProcessesStream:
    """``GET /api/execution-processes/stream/ws?task_attempt_id=&show_soft_deleted=``."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def _snapshot(self, attempt_id: uuid.UUID, show_soft_deleted: bool) -> JsonDict:
        return {p["id"]: p for p in self._services.processes.list(attempt_id, show_soft_deleted)}

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        attempt_id = _uuid_param(req, "task_attempt_id")
        if isinstance(attempt_id, str):
            return await deny(req, ws, 400, attempt_id)
        try:
            show = query_bool(req.get_param("show_soft_deleted"), "show_soft_deleted")
        except ApiError as exc:
            return await deny(req, ws, exc.status, exc.message)
        if not await run_sync(self._services.attempts.exists, attempt_id):
            return await deny(req, ws, 404, f"Task attempt {attempt_id} not found")

        def hide_dropped(op: Op, ident: str) -> Op | None:
            value = op.get("value")
            if (
                not show
                and op.get("op") in ("add", "replace")
                and isinstance(value, dict)
                and value.get("dropped")
            ):
                return jp.remove(op["path"])
            return op

        sub = self._services.events.subscribe(ev.processes_topic(str(attempt_id)))
        await serve(
            ws,
            lambda sender: _follow(
                sender,
                sub,
                lambda: self._snapshot(attempt_id, show),
                CollectionTracker("execution_processes"),
                hide_dropped,
            ),
        )
        sub.close()


class DraftsStream:
    """``GET /api/drafts/stream/ws?project_id=``: ``{drafts:{attempt_id:{follow_up, retry}}}``."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        project_id = _uuid_param(req, "project_id")
        if isinstance(project_id, str):
            return await deny(req, ws, 400, project_id)
        if not await run_sync(self._services.projects.exists, project_id):
            return await deny(req, ws, 404, f"Project {project_id} not found")
        tracker = CollectionTracker("drafts", stream_entry)
        sub = self._services.events.subscribe(self._services.drafts.topic(project_id))  # the account's own
        drafts = self._services.drafts
        await serve(
            ws, lambda sender: _follow(sender, sub, lambda: drafts.project_snapshot(project_id), tracker)
        )
        sub.close()
