"""Routes that start and stop executions (spec §1.4 create-and-start, §1.5, §1.6 stop)."""

from __future__ import annotations

import uuid

import falcon.asgi

from anyon.api.http import json_body, respond, run_sync
from anyon.api.resources.projects import CREATE_TASK
from anyon.api.validation import F, check_body, parse_uuid
from anyon.services.container import Services

PROFILE = {"executor": F("str", required=True, nullable=False), "variant": F("str")}
CREATE_ATTEMPT = {
    "task_id": F("uuid", required=True, nullable=False),
    "executor_profile_id": F("object", required=True, nullable=False),
    "base_branch": F("str", required=True, nullable=False),
}
CREATE_AND_START = {
    "task": F("object", required=True, nullable=False),
    "executor_profile_id": F("object", required=True, nullable=False),
    "base_branch": F("str", required=True, nullable=False),
}
FOLLOW_UP = {
    "prompt": F("str", required=True, nullable=False),
    "variant": F("str"),
    "image_ids": F("list[uuid]"),
    "retry_process_id": F("uuid"),
    "force_when_dirty": F("bool"),
    "perform_git_reset": F("bool"),
}
REPLACE_PROCESS = {
    "process_id": F("uuid", required=True, nullable=False),
    "prompt": F("str", required=True, nullable=False),
    "variant": F("str"),
    "force_when_dirty": F("bool"),
    "perform_git_reset": F("bool"),
}


class AttemptCollection:
    """``GET /api/task-attempts[?task_id=]``; ``POST`` answers the row as inserted, then starts it."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raw = req.get_param("task_id")
        task_id = parse_uuid(raw, "task_id") if raw else None
        respond(resp, await run_sync(self._services.attempts.list, task_id))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, CREATE_ATTEMPT)
        profile = check_body(body["executor_profile_id"], PROFILE, what="executor_profile_id")
        attempt = await self._services.executions.create_attempt(
            uuid.UUID(body["task_id"]), profile, body["base_branch"]
        )
        respond(resp, attempt)


class CreateAndStart:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, CREATE_AND_START)
        task_body = check_body(body["task"], CREATE_TASK, what="task")
        profile = check_body(body["executor_profile_id"], PROFILE, what="executor_profile_id")
        task = await run_sync(self._services.tasks.create, task_body)
        result = await self._services.executions.create_and_start(
            uuid.UUID(task["id"]), profile, body["base_branch"]
        )
        respond(resp, result)


class FollowUp:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, FOLLOW_UP)
        respond(resp, await self._services.executions.follow_up(aid, body))


class ReplaceProcess:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, REPLACE_PROCESS)
        respond(resp, await self._services.executions.replace_process(aid, body))


class AttemptStop:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._services.executions.stop_attempt(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class DevServer:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._services.executions.start_dev_server(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class ProcessStop:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, process_id: str) -> None:
        await self._services.executions.stop_process(parse_uuid(process_id, "process id"))
        respond(resp, None)


class ExecutionStatus:
    """``GET /api/executions/status``: how many processes run and how many wait for a slot."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, self._services.executions.status())
