"""``/api/auth/claude/...``: the browser's login terminal for the agents (spec §1.2, §2.7, §2.9).

Thin: the PTY, the credentials check and the logout live in services/agents/agent_login.py. The WebSocket
passes the same boundary checks (Host, Origin) and authentication as every other stream: those run as
middleware before this resource is reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import falcon
import falcon.asgi
from falcon.asgi import SSEvent

from anyon.api.http import json_body, respond
from anyon.api.streams.ws import deny
from anyon.api.validation import F, api_operation
from anyon.services.agents.agent_login import AgentLoginService, LoginSession
from anyon.services.errors import ServiceError

META_PREFIX = "__CLAUDE_META__"
SUCCESS_LINE = "\r\n[anyon] Signed in: the agents will use this login.\r\n"
INPUT = {"input": F("str", required=True, nullable=False)}


class LoginPty:
    """``GET /api/auth/claude/pty`` (WebSocket): meta frame, PTY output as binary frames, input back."""

    def __init__(self, login: AgentLoginService) -> None:
        self._login = login

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        try:
            session = await self._login.start()
        except ServiceError as exc:
            await deny(req, ws, 503, str(exc))
            return
        try:
            await ws.accept()
            await ws.send_text(META_PREFIX + json.dumps({"sessionId": session.id}))
            tasks = [
                asyncio.ensure_future(self._relay_output(ws, session)),
                asyncio.ensure_future(self._relay_input(ws, session)),
                asyncio.ensure_future(self._watch(ws, session)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self._login.end(session.id)
            with contextlib.suppress(Exception):
                await ws.close(1000)

    async def _relay_output(self, ws: falcon.asgi.WebSocket, session: LoginSession) -> None:
        while (data := await session.output.get()) is not None:
            await ws.send_data(data)
        await asyncio.sleep(self._login.check_seconds)  # the CLI has exited: one last look for credentials
        if self._login.credentials_present(session):
            await ws.send_text(SUCCESS_LINE)

    async def _relay_input(self, ws: falcon.asgi.WebSocket, session: LoginSession) -> None:
        """Binary and text frames alike are keystrokes (spec §2.7)."""
        while True:
            try:
                event = await ws._receive()  # either payload type; receive_data() would drop a text frame
            except falcon.WebSocketDisconnected:
                return
            data = event.get("bytes")
            if data is None:
                data = (event.get("text") or "").encode()
            if data:
                await self._login.write(session.id, data)

    async def _watch(self, ws: falcon.asgi.WebSocket, session: LoginSession) -> None:
        """Every few seconds: have credentials appeared (then say so and end), or has the time run out?"""
        while True:
            await asyncio.sleep(self._login.check_seconds)
            if self._login.credentials_present(session):
                await ws.send_text(SUCCESS_LINE)
                return
            if self._login.expired(session):
                await ws.send_text("\r\n[anyon] The login terminal was open too long and was closed.\r\n")
                return


class LoginPtyLog:
    """``GET /api/auth/claude/pty/session/{session_id}/log``: what the terminal printed (input as lengths)."""

    def __init__(self, login: AgentLoginService) -> None:
        self._login = login

    @api_operation(data="ClaudePtyLog")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_id: str) -> None:
        respond(resp, self._login.session_log(session_id))


class Logout:
    """``POST /api/auth/claude/logout``: the stored login is removed (no network needed), from the running
    containers too."""

    def __init__(self, login: AgentLoginService) -> None:
        self._login = login

    @api_operation(data="null")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self._login.logout()
        respond(resp, None)


class Session:
    """``POST /api/auth/claude/session``: the legacy login session without a WebSocket; ``{session_id}``."""

    def __init__(self, login: AgentLoginService) -> None:
        self._login = login

    @api_operation(data="ClaudeLoginSession")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        session = await self._login.start()
        respond(resp, {"session_id": session.id})


class SessionStream:
    """``GET /api/auth/claude/session/{session_id}/stream`` (SSE): output and state events as JSON."""

    def __init__(self, login: AgentLoginService, keepalive_seconds: float = 15.0) -> None:
        self._login = login
        self._keepalive = keepalive_seconds

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_id: str) -> None:
        session = self._login.get(session_id)
        resp.set_header("Cache-Control", "no-cache")
        resp.sse = self._events(session)

    async def _events(self, session: LoginSession) -> AsyncIterator[SSEvent]:
        def event(payload: dict[str, Any]) -> SSEvent:
            return SSEvent(json=payload)

        while True:
            try:
                data = await asyncio.wait_for(session.output.get(), self._login.check_seconds)
            except TimeoutError:
                if self._login.credentials_present(session):
                    yield event({"type": "success"})
                    await self._login.end(session.id)
                    return
                if self._login.expired(session):
                    yield event({"type": "timeout"})
                    await self._login.end(session.id)
                    return
                yield SSEvent(comment="keep-alive")
                continue
            if data is None:
                state = "success" if self._login.credentials_present(session) else "exited"
                yield event({"type": state})
                return
            yield event({"type": "output", "data": data.decode("utf-8", "replace")})


class SessionInput:
    """``POST /api/auth/claude/session/{session_id}/input`` ``{input}``: typed into the terminal."""

    def __init__(self, login: AgentLoginService) -> None:
        self._login = login

    @api_operation(body=INPUT, data="null")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_id: str) -> None:
        body = await json_body(req, INPUT)
        await self._login.write(session_id, str(body["input"]).encode())
        respond(resp, None)


class SessionCancel:
    """``POST /api/auth/claude/session/{session_id}/cancel``: the login process is ended."""

    def __init__(self, login: AgentLoginService) -> None:
        self._login = login

    @api_operation(data="null")
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_id: str) -> None:
        self._login.get(session_id)
        await self._login.end(session_id)
        respond(resp, None)


def register(app: falcon.asgi.App[Any, Any], login: AgentLoginService) -> None:
    add = app.add_route
    add("/api/auth/claude/session", Session(login))
    add("/api/auth/claude/session/{session_id}/stream", SessionStream(login))
    add("/api/auth/claude/session/{session_id}/input", SessionInput(login))
    add("/api/auth/claude/session/{session_id}/cancel", SessionCancel(login))
    add("/api/auth/claude/logout", Logout(login))
    add("/api/auth/claude/pty", LoginPty(login))
    add("/api/auth/claude/pty/session/{session_id}/log", LoginPtyLog(login))
