"""Attempts/processes reads, filesystem, tags and images routes (spec §1.5 to §1.7)."""

from __future__ import annotations

import falcon.asgi

from anyon.api.http import json_body, respond, run_sync
from anyon.api.validation import F, parse_uuid, query_bool
from anyon.services.container import Services

CREATE_TAG = {
    "tag_name": F("str", required=True, nullable=False),
    "content": F("str", required=True, nullable=False),
}
UPDATE_TAG = {"tag_name": F("str"), "content": F("str")}


class AttemptItem:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        respond(resp, await run_sync(self._services.attempts.get, parse_uuid(attempt_id, "attempt id")))


class ProcessCollection:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        attempt_id = parse_uuid(req.get_param("task_attempt_id", required=True), "task_attempt_id")
        show = query_bool(req.get_param("show_soft_deleted"), "show_soft_deleted")
        respond(resp, await run_sync(self._services.processes.list, attempt_id, show))


class ProcessItem:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, process_id: str) -> None:
        respond(resp, await run_sync(self._services.processes.get, parse_uuid(process_id, "process id")))


class Directory:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, await run_sync(self._services.filesystem.list_directory, req.get_param("path")))


class TagCollection:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, await run_sync(self._services.tags.list, req.get_param("search")))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, CREATE_TAG)
        respond(resp, await run_sync(self._services.tags.create, body))


class TagItem:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tag_id: str) -> None:
        respond(resp, await run_sync(self._services.tags.get, parse_uuid(tag_id, "tag id")))

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tag_id: str) -> None:
        tid = parse_uuid(tag_id, "tag id")
        body = await json_body(req, UPDATE_TAG)
        respond(resp, await run_sync(self._services.tags.update, tid, body))

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tag_id: str) -> None:
        await run_sync(self._services.tags.delete, parse_uuid(tag_id, "tag id"))
        respond(resp, None)


class TaskImages:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, task_id: str) -> None:
        respond(resp, await run_sync(self._services.images.for_task, parse_uuid(task_id, "task id")))


class ContainerInfo:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        ref = req.get_param("ref", required=True)
        respond(resp, await run_sync(self._services.attempts.container_info, ref))
