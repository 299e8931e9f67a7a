"""Git routes of projects and attempts (spec §1.3 branches/search, §1.5, §1.7 git-repos)."""

from __future__ import annotations

import falcon.asgi

from anyon.api.http import json_body, optional_json_body, respond, run_sync
from anyon.api.validation import F, api_operation, parse_uuid, query_params
from anyon.services.container import Services

REBASE = {"old_base_branch": F("branch"), "new_base_branch": F("branch")}
CHANGE_TARGET = {"new_target_branch": F("branch", required=True, nullable=False)}
RENAME = {"new_branch_name": F("branch", required=True, nullable=False)}
SEARCH = {"q": F("str"), "mode": F("str", enum=("taskform", "settings"))}
GIT_REPOS = {"path": F("str")}
SHA = {"sha": F("str", required=True, nullable=False)}
FILE_PATH = {"file_path": F("str", required=True, nullable=False)}


class ProjectBranches:
    def __init__(self, services: Services) -> None:
        self._git = services.attempt_git

    @api_operation(data="GitBranch[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project_id: str) -> None:
        respond(resp, await run_sync(self._git.branches, parse_uuid(project_id, "project id")))


class ProjectSearch:
    def __init__(self, services: Services) -> None:
        self._git = services.attempt_git

    @api_operation(query=SEARCH, data="SearchResult[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, project_id: str) -> None:
        pid = parse_uuid(project_id, "project id")
        params = query_params(req, SEARCH)
        respond(resp, await run_sync(self._git.search, pid, params["q"] or "", params["mode"] or "taskform"))


class GitRepos:
    def __init__(self, services: Services) -> None:
        self._fs = services.filesystem

    @api_operation(query=GIT_REPOS, data="DirectoryEntry[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        path = query_params(req, GIT_REPOS)["path"]
        respond(resp, await run_sync(self._fs.find_git_repos, path))


class _AttemptAction:
    def __init__(self, services: Services) -> None:
        self._git = services.attempt_git


class BranchStatus(_AttemptAction):
    @api_operation(data="BranchStatus")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        respond(resp, await self._git.branch_status(parse_uuid(attempt_id, "attempt id")))


class Merge(_AttemptAction):
    @api_operation(data="null")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._git.merge(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class Rebase(_AttemptAction):
    @api_operation(body=REBASE, data="null", body_required=False)
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        """The body is optional and read however it is framed (Content-Length, chunked, or none)."""
        aid = parse_uuid(attempt_id, "attempt id")
        body = await optional_json_body(req, REBASE)
        await self._git.rebase(aid, body)
        respond(resp, None)


class AbortConflicts(_AttemptAction):
    @api_operation(data="null")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._git.abort_conflicts(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class ChangeTargetBranch(_AttemptAction):
    @api_operation(body=CHANGE_TARGET, data="ChangeTargetBranchResponse")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, CHANGE_TARGET)
        respond(resp, await run_sync(self._git.change_target_branch, aid, body["new_target_branch"]))


class RenameBranch(_AttemptAction):
    @api_operation(body=RENAME, data="RenameBranchResponse")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, RENAME)
        respond(resp, await self._git.rename_branch(aid, body["new_branch_name"]))


class CommitInfo(_AttemptAction):
    @api_operation(query=SHA, data="CommitInfo")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        respond(resp, await run_sync(self._git.commit_info, aid, query_params(req, SHA)["sha"]))


class CommitCompare(_AttemptAction):
    @api_operation(query=SHA, data="CommitCompareResult")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        respond(resp, await self._git.commit_compare(aid, query_params(req, SHA)["sha"]))


class DeleteFile(_AttemptAction):
    @api_operation(query=FILE_PATH, data="null")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        await self._git.delete_file(aid, query_params(req, FILE_PATH)["file_path"])
        respond(resp, None)


class Children(_AttemptAction):
    @api_operation(data="TaskRelationships")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        respond(resp, await run_sync(self._git.children, parse_uuid(attempt_id, "attempt id")))
