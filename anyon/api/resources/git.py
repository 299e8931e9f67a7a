"""Git routes of projects and attempts (spec §1.3 branches/search, §1.5, §1.7 git-repos)."""

from __future__ import annotations

import falcon.asgi

from anyon.api.http import json_body, respond, run_sync
from anyon.api.validation import F, parse_uuid
from anyon.services.container import Services

REBASE = {"old_base_branch": F("str"), "new_base_branch": F("str")}
CHANGE_TARGET = {"new_target_branch": F("str", required=True, nullable=False)}
RENAME = {"new_branch_name": F("str", required=True, nullable=False)}


class ProjectBranches:
    def __init__(self, services: Services) -> None:
        self._git = services.attempt_git
        self._projects = services.projects

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project_id: str) -> None:
        pid = parse_uuid(project_id, "project id")
        await run_sync(self._projects.repository_path, pid)  # still inside the roots?
        respond(resp, await run_sync(self._git.branches, pid))


class ProjectSearch:
    def __init__(self, services: Services) -> None:
        self._git = services.attempt_git
        self._projects = services.projects

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project_id: str) -> None:
        pid = parse_uuid(project_id, "project id")
        await run_sync(self._projects.repository_path, pid)  # still inside the roots?
        query = req.get_param("q") or ""
        mode = req.get_param("mode") or "taskform"
        respond(resp, await run_sync(self._git.search, pid, query, mode))


class GitRepos:
    def __init__(self, services: Services) -> None:
        self._fs = services.filesystem

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, await run_sync(self._fs.find_git_repos, req.get_param("path")))


class _AttemptAction:
    def __init__(self, services: Services) -> None:
        self._git = services.attempt_git


class BranchStatus(_AttemptAction):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        respond(resp, await self._git.branch_status(parse_uuid(attempt_id, "attempt id")))


class Merge(_AttemptAction):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._git.merge(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class Rebase(_AttemptAction):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, REBASE) if req.content_length else {}
        await self._git.rebase(aid, body)
        respond(resp, None)


class AbortConflicts(_AttemptAction):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._git.abort_conflicts(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class ChangeTargetBranch(_AttemptAction):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, CHANGE_TARGET)
        respond(resp, await run_sync(self._git.change_target_branch, aid, body["new_target_branch"]))


class RenameBranch(_AttemptAction):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, RENAME)
        respond(resp, await self._git.rename_branch(aid, body["new_branch_name"]))


class CommitInfo(_AttemptAction):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        respond(resp, await run_sync(self._git.commit_info, aid, req.get_param("sha", required=True)))


class CommitCompare(_AttemptAction):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        respond(resp, await self._git.commit_compare(aid, req.get_param("sha", required=True)))


class DeleteFile(_AttemptAction):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        await self._git.delete_file(aid, req.get_param("file_path", required=True))
        respond(resp, None)


class Children(_AttemptAction):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        respond(resp, await run_sync(self._git.children, parse_uuid(attempt_id, "attempt id")))
