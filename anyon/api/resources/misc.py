"""Attempts/processes reads, filesystem, tags and images routes (spec §1.5 to §1.7)."""

from __future__ import annotations

import falcon.asgi

from anyon.api.http import json_body, respond, run_sync
from anyon.api.validation import F, api_operation, parse_uuid, query_params
from anyon.services.container import Services

CREATE_TAG = {
    "tag_name": F("str", required=True, nullable=False),
    "content": F("str", required=True, nullable=False),
}
UPDATE_TAG = {"tag_name": F("str"), "content": F("str")}
LIST_PROCESSES = {
    "task_attempt_id": F("uuid", required=True, nullable=False),
    "show_soft_deleted": F("bool"),
}
PATH_QUERY = {"path": F("str")}
TAG_SEARCH = {"search": F("str")}
CONTAINER_REF = {"ref": F("str", required=True, nullable=False)}


class AttemptItem:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="TaskAttempt")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        respond(resp, await run_sync(self._services.attempts.get, parse_uuid(attempt_id, "attempt id")))


class ProcessCollection:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(query=LIST_PROCESSES, data="ExecutionProcess[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        params = query_params(req, LIST_PROCESSES)
        respond(
            resp,
            await run_sync(
                self._services.processes.list, params["task_attempt_id"], params["show_soft_deleted"]
            ),
        )


class ProcessItem:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="ExecutionProcess")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, process_id: str) -> None:
        respond(resp, await run_sync(self._services.processes.get, parse_uuid(process_id, "process id")))


class Directory:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(query=PATH_QUERY, data="DirectoryListResponse")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        path = query_params(req, PATH_QUERY)["path"]
        respond(resp, await run_sync(self._services.filesystem.list_directory, path))


class TagCollection:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(query=TAG_SEARCH, data="Tag[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        search = query_params(req, TAG_SEARCH)["search"]
        respond(resp, await run_sync(self._services.tags.list, search))

    @api_operation(body=CREATE_TAG, data="Tag")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, CREATE_TAG)
        respond(resp, await run_sync(self._services.tags.create, body))


class TagItem:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="Tag")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tag_id: str) -> None:
        respond(resp, await run_sync(self._services.tags.get, parse_uuid(tag_id, "tag id")))

    @api_operation(body=UPDATE_TAG, data="Tag")
    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tag_id: str) -> None:
        tid = parse_uuid(tag_id, "tag id")
        body = await json_body(req, UPDATE_TAG)
        respond(resp, await run_sync(self._services.tags.update, tid, body))

    @api_operation(data="null")
    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tag_id: str) -> None:
        await run_sync(self._services.tags.delete, parse_uuid(tag_id, "tag id"))
        respond(resp, None)


class TaskImages:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="ImageResponse[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, task_id: str) -> None:
        respond(resp, await run_sync(self._services.images.for_task, parse_uuid(task_id, "task id")))


class ContainerInfo:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(query=CONTAINER_REF, data="ContainerInfo")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        ref = query_params(req, CONTAINER_REF)["ref"]
        respond(resp, await run_sync(self._services.attempts.container_info, ref))
