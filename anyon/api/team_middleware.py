"""Project access, revocation of open streams and the audit trail, for every route and stream at once.

Installed after authentication on a cloud server with accounts. Every id a request names — in its path
(``{project_id}``, ``{task_id}``, ``{attempt_id}``, ``{process_id}``, ``{image_id}``, ``{tag_id}``), its
query string (``project_id``, ``task_id``, ``task_attempt_id``) or its JSON body (``project_id``,
``task_id``, ``parent_task_attempt``, ``process_id``, ``retry_process_id``, ``task.project_id``) — is
checked against :class:`~anyon.services.team.access.AccessScope` *before* the resource runs, so no resource
needs a check of its own and a new route is covered by naming its ids the usual way. An object the
caller may not see answers exactly as an unknown id (see ``_stand_in``); a WebSocket is refused with the
same HTTP 404 as for an unknown id. The lists that are not scoped by an id in the request
(``GET /api/projects``, ``GET /api/task-attempts`` without ``task_id``, ``GET /api/tags``,
``GET /api/containers/info``) are filtered on the way out, and ``/api/events`` (one bus for the whole
server) carries only keep-alives to a restricted account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import falcon
import falcon.asgi
from falcon.asgi import SSEvent
from falcon.asgi.stream import BoundedStream

from anyon.api.boundary import client_address
from anyon.api.envelope import ApiError, soft_error
from anyon.api.http import read_body
from anyon.services.team.access import Principal
from anyon.services.team.service import Team

log = logging.getLogger(__name__)

#: path/query parameter -> (object kind, the "unknown id" message of the services)
PARAMS: dict[str, tuple[str, str]] = {
    "project_id": ("project", "Project {} not found"),
    "task_id": ("task", "Task {} not found"),
    "attempt_id": ("attempt", "Task attempt {} not found"),
    "task_attempt_id": ("attempt", "Task attempt {} not found"),
    "process_id": ("process", "Execution process {} not found"),
    "image_id": ("image", "Image {} not found"),
    "tag_id": ("tag", "Tag {} not found"),
}
#: JSON body field -> path parameter whose rule applies
BODY_FIELDS = {
    "project_id": "project_id",
    "task_id": "task_id",
    "parent_task_attempt": "attempt_id",
    "process_id": "process_id",
    "retry_process_id": "process_id",
}
QUERY_PARAMS = ("project_id", "task_id", "task_attempt_id")
_A = "/api/task-attempts/{attempt_id}"
#: (method, route template) -> audited action
AUDITED: dict[tuple[str, str], str] = {
    ("POST", "/api/projects"): "project.create",
    ("POST", "/api/projects/from-github"): "project.create",
    ("PUT", "/api/projects/{project_id}"): "project.update",
    ("DELETE", "/api/projects/{project_id}"): "project.delete",
    ("POST", "/api/tasks"): "task.create",
    ("PUT", "/api/tasks/{task_id}"): "task.update",
    ("DELETE", "/api/tasks/{task_id}"): "task.delete",
    ("POST", "/api/tasks/create-and-start"): "task.create_and_start",
    ("POST", "/api/task-attempts"): "attempt.start",
    ("POST", f"{_A}/follow-up"): "attempt.follow_up",
    ("POST", f"{_A}/replace-process"): "attempt.replace_process",
    ("POST", f"{_A}/stop"): "attempt.stop",
    ("POST", f"{_A}/start-dev-server"): "attempt.start_dev_server",
    ("POST", "/api/execution-processes/{process_id}/stop"): "process.stop",
    ("POST", f"{_A}/merge"): "attempt.merge",
    ("POST", f"{_A}/rebase"): "attempt.rebase",
    ("POST", f"{_A}/push"): "attempt.push",
    ("POST", f"{_A}/pr"): "attempt.pr",
    ("POST", f"{_A}/pr/attach"): "attempt.pr_attach",
    ("POST", f"{_A}/delete-file"): "attempt.delete_file",
    ("POST", f"{_A}/rename-branch"): "attempt.rename_branch",
    ("POST", f"{_A}/change-target-branch"): "attempt.change_target_branch",
    ("POST", f"{_A}/conflicts/abort"): "attempt.abort_conflicts",
    # an account's own credentials and agent settings (its agent home, its UI config and GitHub token)
    ("POST", "/api/auth/claude/logout"): "agent.logout",
    ("POST", "/api/mcp-config"): "mcp.update",
    ("PUT", "/api/config"): "config.update",
}
REVOKED_CLOSE_CODE = 4401
#: a WebSocket still not accepted this long after authentication is not a stream to watch
UNACCEPTED_SECONDS = 30.0


def _principal(req: falcon.asgi.Request) -> Principal | None:
    return getattr(req.context, "principal", None)


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _replay(req: falcon.asgi.Request, raw: bytes) -> None:
    """Give the resource the body this middleware already read."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}

    req._stream = BoundedStream(receive, content_length=len(raw))


class TeamMiddleware:
    def __init__(self, team: Team) -> None:
        self._team = team
        self._scope = team.scope

    # --- access -------------------------------------------------------------------------------------

    async def _visible(self, principal: Principal | None, name: str, value: Any) -> bool:
        ident = _uuid(value)
        if ident is None:
            return True  # malformed: the resource answers 400 as it always did
        return await asyncio.to_thread(self._scope.can_see, principal, PARAMS[name][0], ident)

    @staticmethod
    def _stand_in(req: falcon.asgi.Request, original: str) -> str:
        """An id that exists nowhere, to run the resource with in place of a hidden one.

        The caller then gets exactly the answer an unknown id gets (404 for an item, an empty list for a
        list filtered by it, the same soft error for a body reference); the original id is put back
        into the message the resource writes, so not even the wording tells the two apart.
        """
        stand_in = str(uuid.uuid4())
        req.context.stand_ins = {**getattr(req.context, "stand_ins", {}), stand_in: original}
        return stand_in

    async def _check_request(
        self, req: falcon.asgi.Request, params: dict[str, Any], *, websocket: bool
    ) -> Principal | None:
        principal = _principal(req)
        if not self._scope.restricted(principal):
            return principal
        named = [(n, v, "path") for n, v in params.items() if n in PARAMS]
        named += [(n, req.get_param(n), "query") for n in QUERY_PARAMS if req.get_param(n)]
        for name, value, where in named:
            if await self._visible(principal, name, value):
                continue
            if websocket:  # the streams' own answer to an unknown id: the upgrade refused with 404
                raise ApiError(404, PARAMS[name][1].format(value))
            if where == "path":
                params[name] = self._stand_in(req, value)
            else:
                cast(dict[str, Any], req.params)[name] = self._stand_in(req, value)
        return principal

    async def _check_body(self, req: falcon.asgi.Request, principal: Principal | None) -> None:
        if req.method not in ("POST", "PUT", "PATCH") or "json" not in (req.content_type or ""):
            return
        raw = await read_body(req, req.context.max_body_bytes)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None  # the resource answers the parse error
        changed = False
        for holder in (body, body.get("task") if isinstance(body, dict) else None):
            if not isinstance(holder, dict):
                continue
            for key, rule in BODY_FIELDS.items():
                value = holder.get(key)
                if value is not None and not await self._visible(principal, rule, value):
                    holder[key] = self._stand_in(req, value)
                    changed = True
        _replay(req, json.dumps(body).encode() if changed else raw)

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, params: dict[str, Any]
    ) -> None:
        principal = await self._check_request(req, params, websocket=False)
        if self._scope.restricted(principal):
            await self._check_body(req, principal)
        action = AUDITED.get((req.method, req.uri_template or ""))
        if action is not None:
            stand_ins = getattr(req.context, "stand_ins", {})
            req.context.audit = (action, await asyncio.to_thread(self._where, params, stand_ins))

    async def process_resource_ws(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, resource: object, params: dict[str, Any]
    ) -> None:
        principal = await self._check_request(req, params, websocket=True)
        if principal is not None and principal.token_id is not None:
            registered = time.monotonic()

            def alive() -> bool:
                # a handshake the resource refused (unknown id) never opens: drop it after a while
                stale = ws.unaccepted and time.monotonic() - registered > UNACCEPTED_SECONDS
                return not ws.closed and not stale

            self._team.watch.register(principal.token_id, lambda: ws.close(REVOKED_CLOSE_CODE), alive=alive)

    # --- lists, streams, audit ----------------------------------------------------------------------

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, req_succeeded: bool
    ) -> None:
        principal = _principal(req)
        if principal is None:
            return
        stand_ins = getattr(req.context, "stand_ins", None)
        if stand_ins and isinstance(resp.media, dict) and isinstance(resp.media.get("message"), str):
            for stand_in, original in stand_ins.items():
                resp.media["message"] = resp.media["message"].replace(stand_in, original)
        if self._scope.restricted(principal) and req.method == "GET":
            await self._filter(req, resp, principal)
        restricted = self._scope.restricted(principal)
        if resp.sse is not None and (restricted or principal.token_id is not None):
            resp.sse = self._guarded(resp.sse, principal, keepalive_only=restricted)
        audit = getattr(req.context, "audit", None)
        if audit is not None:
            await asyncio.to_thread(self._record, req, resp, principal, *audit)

    async def _filter(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, principal: Principal
    ) -> None:
        media = resp.media
        if not isinstance(media, dict) or media.get("success") is not True:
            return
        data = media.get("data")
        template = req.uri_template
        if template == "/api/projects" and isinstance(data, list):
            visible = await asyncio.to_thread(self._scope.visible_project_ids, principal)
            media["data"] = [p for p in data if visible is None or str(p.get("id")) in visible]
        elif template == "/api/tags" and isinstance(data, list):
            tags = await asyncio.to_thread(self._scope.visible_tag_ids, principal)
            media["data"] = [t for t in data if tags is None or str(t.get("id")) in tags]
        elif template == "/api/task-attempts" and isinstance(data, list):
            media["data"] = [
                a
                for a in data
                if await asyncio.to_thread(self._scope.can_see, principal, "attempt", str(a.get("id")))
            ]
        elif template == "/api/containers/info" and isinstance(data, dict):
            attempt = str(data.get("attempt_id"))
            if not await asyncio.to_thread(self._scope.can_see, principal, "attempt", attempt):
                resp.status = 404
                # the very answer of an unknown ref (AttemptService.container_info)
                resp.media = soft_error(f"No attempt owns {req.get_param('ref')!r}")

    async def _guarded(
        self, events: AsyncIterator[SSEvent | None], principal: Principal, *, keepalive_only: bool
    ) -> AsyncIterator[SSEvent | None]:
        """The stream, ended when its token is revoked; only keep-alives when the account is restricted."""
        revoked = asyncio.Event()

        async def close() -> None:
            revoked.set()

        handle = None
        if principal.token_id is not None:
            handle = self._team.watch.register(principal.token_id, close)
        iterator = events.__aiter__()
        stop = asyncio.ensure_future(revoked.wait())
        nxt: asyncio.Future[SSEvent | None] | None = None
        try:
            while True:
                nxt = asyncio.ensure_future(iterator.__anext__())
                await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                if revoked.is_set():
                    return
                try:
                    event = nxt.result()
                except StopAsyncIteration:
                    return
                if keepalive_only and event is not None and event.comment is None:
                    continue
                yield event
        finally:
            stop.cancel()
            if handle is not None:
                self._team.watch.unregister(handle)
            if nxt is not None and not nxt.done():
                # the inner stream is still inside its __anext__: closing it then raises "already running"
                # (revoked, or the client went away while waiting); let that step unwind first
                nxt.cancel()
                await asyncio.wait({nxt})
            if nxt is not None and nxt.done() and not nxt.cancelled():
                nxt.exception()  # retrieved, so that asyncio does not report it as never retrieved
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def _where(self, params: dict[str, Any], stand_ins: dict[str, str]) -> dict[str, str]:
        """The ids an audited action is about, resolved before it runs (a delete removes them).

        A refused attempt on a hidden object is recorded with the id the caller sent.
        """
        where: dict[str, str] = {}
        for name, value in params.items():
            if name in PARAMS and _uuid(value):
                original = stand_ins.get(str(value), str(value))
                where.update(self._scope.locate(PARAMS[name][0], original) if original == value else {})
                where[name if name != "task_attempt_id" else "attempt_id"] = original
        return where

    def _record(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        principal: Principal,
        action: str,
        where: dict[str, str],
    ) -> None:
        media = resp.media if isinstance(resp.media, dict) else {}
        succeeded = resp.status_code < 400 and media.get("success") is True
        data = media.get("data") if succeeded else None
        ids = dict(where)
        kind = action.partition(".")[0]
        if isinstance(data, dict):  # a created object: its id and the ids it names
            if data.get("id") and f"{kind}_id" not in ids:
                ids[f"{kind}_id"] = str(data["id"])
            for key in ("project_id", "task_id"):
                if data.get(key):
                    ids[key] = str(data[key])
            if "task_id" in ids and "project_id" not in ids:
                ids.update(self._scope.locate("task", ids["task_id"]))
        obj = ids.get(f"{action.partition('.')[0]}_id")
        self._team.audit.record(
            {
                "user": principal.login,
                "user_id": principal.user_id,
                "action": action,
                "object_id": obj,
                **ids,
                "outcome": "ok" if succeeded else "failed",
                "status": resp.status_code,
                "client": client_address(req),
            }
        )
