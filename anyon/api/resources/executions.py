"""Routes that start and stop executions (spec §1.4 create-and-start, §1.5, §1.6 stop)."""

from __future__ import annotations

import uuid

import falcon.asgi

from anyon.api.http import json_body, respond, run_sync
from anyon.api.resources.projects import CREATE_TASK
from anyon.api.validation import F, api_operation, parse_uuid, query_params
from anyon.services.container import Services

PROFILE = {"executor": F("str", required=True, nullable=False), "variant": F("str")}
CREATE_ATTEMPT = {
    "task_id": F("uuid", required=True, nullable=False),
    "executor_profile_id": F("object", required=True, nullable=False, fields=PROFILE),
    "base_branch": F("branch", required=True, nullable=False),
}
CREATE_AND_START = {
    "task": F("object", required=True, nullable=False, fields=CREATE_TASK),
    "executor_profile_id": F("object", required=True, nullable=False, fields=PROFILE),
    "base_branch": F("branch", required=True, nullable=False),
}
LIST_ATTEMPTS = {"task_id": F("uuid")}
AGENT_SETUP = {"executor_profile_id": F("object", required=True, nullable=False, fields=PROFILE)}
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

    @api_operation(query=LIST_ATTEMPTS, data="TaskAttempt[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        task_id = query_params(req, LIST_ATTEMPTS)["task_id"]
        respond(resp, await run_sync(self._services.attempts.list, task_id))

    @api_operation(body=CREATE_ATTEMPT, data="TaskAttempt")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, CREATE_ATTEMPT)
        attempt = await self._services.executions.create_attempt(
            uuid.UUID(body["task_id"]), body["executor_profile_id"], body["base_branch"]
        )
        respond(resp, attempt)


class CreateAndStart:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(body=CREATE_AND_START, data="TaskWithAttemptStatus")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, CREATE_AND_START)
        result = await self._services.executions.create_and_start(
            self._services.tasks, body["task"], body["executor_profile_id"], body["base_branch"]
        )
        respond(resp, result)


class FollowUp:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(body=FOLLOW_UP, data="ExecutionProcess")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, FOLLOW_UP)
        respond(resp, await self._services.executions.follow_up(aid, body))


class AgentSetup:
    """``POST …/run-agent-setup``: Cursor Agent's setup helper, chained before its last request."""

    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(body=AGENT_SETUP, data="EmptyObject")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, AGENT_SETUP)
        respond(resp, await self._services.executions.run_agent_setup(aid, body))


class ReplaceProcess:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(body=REPLACE_PROCESS, data="ReplaceProcessResult")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, REPLACE_PROCESS)
        respond(resp, await self._services.executions.replace_process(aid, body))


class AttemptStop:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="null", body_required=False)
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._services.executions.stop_attempt(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class DevServer:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="null", body_required=False)
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._services.executions.start_dev_server(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class ProcessStop:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="null", body_required=False)
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, process_id: str) -> None:
        await self._services.executions.stop_process(parse_uuid(process_id, "process id"))
        respond(resp, None)


class ExecutionStatus:
    """``GET /api/executions/status``: how many processes run and how many wait for a slot."""

    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="ExecutionStatus")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, self._services.executions.status())
