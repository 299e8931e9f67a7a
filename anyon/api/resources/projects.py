"""Projects and tasks routes (spec §1.3, §1.4): translate HTTP ↔ service calls, nothing more."""

from __future__ import annotations

import uuid

import falcon.asgi

from anyon.api.http import json_body, respond, run_sync
from anyon.api.validation import F, api_operation, parse_uuid, query_params
from anyon.services.container import Services

CREATE_PROJECT = {
    "name": F("str", required=True, nullable=False),
    "git_repo_path": F("str", required=True, nullable=False),
    "use_existing_repo": F("bool", required=True, nullable=False),
    "setup_script": F("str"),
    "dev_script": F("str"),
    "cleanup_script": F("str"),
    "copy_files": F("str"),
}
UPDATE_PROJECT = {
    "name": F("str"),
    "git_repo_path": F("str"),
    "setup_script": F("str"),
    "dev_script": F("str"),
    "cleanup_script": F("str"),
    "copy_files": F("str"),
}
CREATE_TASK = {
    "project_id": F("uuid", required=True, nullable=False),
    "title": F("str", required=True, nullable=False),
    "description": F("str"),
    "parent_task_attempt": F("uuid"),
    "image_ids": F("list[uuid]"),
}
LIST_TASKS = {"project_id": F("uuid", required=True, nullable=False)}
UPDATE_TASK = {
    "title": F("str"),
    "description": F("str"),
    "status": F("str"),
    "parent_task_attempt": F("uuid"),
    "image_ids": F("list[uuid]"),
}


class ProjectCollection:
    def __init__(self, services: Services) -> None:
        self._projects = services.projects
        self._executions = services.executions

    @api_operation(data="Project[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, await run_sync(self._projects.list))

    @api_operation(body=CREATE_PROJECT, data="Project")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, CREATE_PROJECT)
        project = await run_sync(self._projects.create, body)
        self._executions.project_active(uuid.UUID(project["id"]))
        respond(resp, project)


class ProjectItem:
    def __init__(self, services: Services) -> None:
        self._projects = services.projects
        self._executions = services.executions

    @api_operation(data="Project")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project_id: str) -> None:
        pid = parse_uuid(project_id, "project id")
        project = await run_sync(self._projects.get, pid)
        self._executions.project_active(pid)  # the UI opens the board before an attempt is started
        respond(resp, project)

    @api_operation(body=UPDATE_PROJECT, data="Project")
    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project_id: str) -> None:
        """Change only the fields sent: an absent field stays as it is; a null script is cleared."""
        pid = parse_uuid(project_id, "project id")
        body = await json_body(req, UPDATE_PROJECT, partial=True)
        respond(resp, await run_sync(self._projects.update, pid, body))

    @api_operation(data="null")
    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project_id: str) -> None:
        pid = parse_uuid(project_id, "project id")
        await run_sync(self._projects.delete, pid)
        await self._executions.project_deleted(pid)
        respond(resp, None)


class TaskCollection:
    def __init__(self, services: Services) -> None:
        self._tasks = services.tasks
        self._executions = services.executions

    @api_operation(query=LIST_TASKS, data="TaskWithAttemptStatus[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        project_id = query_params(req, LIST_TASKS)["project_id"]
        respond(resp, await run_sync(self._tasks.list_for_project, project_id))

    @api_operation(body=CREATE_TASK, data="Task")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, CREATE_TASK)
        task = await run_sync(self._tasks.create, body)
        self._executions.project_active(uuid.UUID(task["project_id"]))
        respond(resp, task)


class TaskItem:
    def __init__(self, services: Services) -> None:
        self._services = services

    @api_operation(data="Task")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, task_id: str) -> None:
        respond(resp, await run_sync(self._services.tasks.get, parse_uuid(task_id, "task id")))

    @api_operation(body=UPDATE_TASK, data="Task")
    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, task_id: str) -> None:
        tid = parse_uuid(task_id, "task id")
        body = await json_body(req, UPDATE_TASK)
        respond(resp, await run_sync(self._services.tasks.update, tid, body))

    @api_operation(data="null", status=202)
    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, task_id: str) -> None:
        tid = parse_uuid(task_id, "task id")
        await self._services.executions.before_task_delete(tid)  # 503 while a lost container is unreachable
        attempts, repo_path = await run_sync(self._services.tasks.delete, tid)
        await self._services.executions.cleanup_attempts_later(attempts, repo_path)
        respond(resp, None, status=202)
