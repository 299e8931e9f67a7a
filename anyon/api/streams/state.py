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

from anyon.api.http import run_sync
from anyon.api.streams.ws import StreamSender, deny, serve
from anyon.api.validation import query_bool
from anyon.services import events as ev
from anyon.services import jsonpatch as jp
from anyon.services.container import Services
from anyon.services.db import queries
from anyon.services.db.models import Draft, Project, Task, TaskAttempt
from anyon.services.db.serialize import draft_row_json, empty_draft_json, process_json
from anyon.services.jsonpatch import Op

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

    def _project_exists(self, project_id: uuid.UUID) -> bool:
        with self._services.database.connection():
            return Project.get_or_none(Project.id == project_id) is not None

    def _snapshot(self, project_id: uuid.UUID) -> JsonDict:
        with self._services.database.connection():
            return {t["id"]: t for t in queries.tasks_with_status(project_id)}

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        project_id = _uuid_param(req, "project_id")
        if isinstance(project_id, str):
            return await deny(req, ws, 400, project_id)
        if not await run_sync(self._project_exists, project_id):
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

    def _attempt_exists(self, attempt_id: uuid.UUID) -> bool:
        with self._services.database.connection():
            return TaskAttempt.get_or_none(TaskAttempt.id == attempt_id) is not None

    def _snapshot(self, attempt_id: uuid.UUID, show_soft_deleted: bool) -> JsonDict:
        with self._services.database.connection():
            rows = queries.processes_for_attempt(attempt_id, show_soft_deleted)
            return {str(p.id): process_json(p) for p in rows}

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        attempt_id = _uuid_param(req, "task_attempt_id")
        if isinstance(attempt_id, str):
            return await deny(req, ws, 400, attempt_id)
        try:
            show = query_bool(req.get_param("show_soft_deleted"), "show_soft_deleted")
        except Exception as exc:  # ApiError with the field named
            return await deny(req, ws, 400, str(getattr(exc, "message", exc)))
        if not await run_sync(self._attempt_exists, attempt_id):
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


def _drafts_entry(attempt_id: str, follow_up: JsonDict | None, retry: JsonDict | None) -> JsonDict:
    return {"follow_up": follow_up or empty_draft_json(attempt_id, "follow_up"), "retry": retry}


class DraftsStream:
    """``GET /api/drafts/stream/ws?project_id=``: ``{drafts:{attempt_id:{follow_up, retry}}}``."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def _project_exists(self, project_id: uuid.UUID) -> bool:
        with self._services.database.connection():
            return Project.get_or_none(Project.id == project_id) is not None

    def _snapshot(self, project_id: uuid.UUID) -> JsonDict:
        with self._services.database.connection():
            attempts = [
                str(a.id)
                for a in TaskAttempt.select(TaskAttempt.id)
                .join(Task, on=(TaskAttempt.task == Task.id))
                .where(Task.project == project_id)
            ]
            found: dict[str, dict[str, JsonDict]] = {}
            if attempts:
                for d in Draft.select().where(Draft.task_attempt.in_(attempts)):
                    found.setdefault(str(d.task_attempt_id), {})[d.draft_type] = draft_row_json(d)
        return {
            a: _drafts_entry(a, found.get(a, {}).get("follow_up"), found.get(a, {}).get("retry"))
            for a in attempts
        }

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        project_id = _uuid_param(req, "project_id")
        if isinstance(project_id, str):
            return await deny(req, ws, 400, project_id)
        if not await run_sync(self._project_exists, project_id):
            return await deny(req, ws, 404, f"Project {project_id} not found")
        tracker = CollectionTracker("drafts", lambda attempt: _drafts_entry(attempt, None, None))

        sub = self._services.events.subscribe(ev.drafts_topic(str(project_id)))
        await serve(
            ws, lambda sender: _follow(sender, sub, lambda: self._snapshot(project_id), tracker, None)
        )
        sub.close()
