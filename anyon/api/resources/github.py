"""GitHub routes: device-flow sign-in and token check (§1.2), repositories and clone-as-project, push,
pull request creation and attach (§1.5). Thin: the work is in :mod:`anyon.services.github`."""

from __future__ import annotations

import falcon.asgi

from anyon.api.http import json_body, optional_json_body, respond, run_sync
from anyon.api.validation import F, api_operation, parse_uuid, query_params
from anyon.services.container import Services

PAGE = {"page": F("int", doc="1-based page of 100 repositories")}
FROM_GITHUB = {
    "repository_id": F("int", required=True, nullable=False),
    "name": F("str", required=True, nullable=False),
    "clone_url": F("str", required=True, nullable=False),
    "setup_script": F("str"),
    "dev_script": F("str"),
    "cleanup_script": F("str"),
}
CREATE_PR = {
    "title": F("str", required=True, nullable=False),
    "body": F("str"),
    "target_branch": F("branch"),
}
ATTACH_PR = {
    "pr_number": F("int", doc="attach this PR of the project's repository instead of the branch's"),
    "pr_url": F("str", doc="attach the PR at this URL (same repository)"),
}


class DeviceStart:
    def __init__(self, services: Services) -> None:
        self._signin = services.github.signin

    @api_operation(data="DeviceFlowStartResponse")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, await run_sync(self._signin.start))


class DevicePoll:
    def __init__(self, services: Services) -> None:
        self._signin = services.github.signin

    @api_operation(data="DevicePollStatus")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, await run_sync(self._signin.poll))


class Check:
    def __init__(self, services: Services) -> None:
        self._signin = services.github.signin

    @api_operation(data="CheckTokenResponse")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        respond(resp, await run_sync(self._signin.check))


class Repositories:
    def __init__(self, services: Services) -> None:
        self._repos = services.github.repositories

    @api_operation(query=PAGE, data="RepositoryInfo[]")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        page = query_params(req, PAGE)["page"]
        page = 1 if page is None else page
        respond(resp, await run_sync(self._repos.list, page))


class FromGitHub:
    def __init__(self, services: Services) -> None:
        self._repos = services.github.repositories

    @api_operation(body=FROM_GITHUB, data="Project")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await json_body(req, FROM_GITHUB)
        respond(resp, await run_sync(self._repos.clone_project, body))


class Push:
    def __init__(self, services: Services) -> None:
        self._pulls = services.github.pulls

    @api_operation(data="null")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        await self._pulls.push(parse_uuid(attempt_id, "attempt id"))
        respond(resp, None)


class CreatePr:
    def __init__(self, services: Services) -> None:
        self._pulls = services.github.pulls

    @api_operation(body=CREATE_PR, data="string")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await json_body(req, CREATE_PR)
        respond(resp, await self._pulls.create(aid, body))


class AttachPr:
    def __init__(self, services: Services) -> None:
        self._pulls = services.github.pulls

    @api_operation(body=ATTACH_PR, data="AttachPrResponse", body_required=False)
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, attempt_id: str) -> None:
        aid = parse_uuid(attempt_id, "attempt id")
        body = await optional_json_body(req, ATTACH_PR)
        respond(resp, await self._pulls.attach(aid, body))
