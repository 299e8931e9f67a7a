"""Authentication for a server reachable from other machines, and the per-request metrics.

When ``server.host`` is not loopback (the *configured* host decides, not the socket), every route but
``/api/health`` and the login step needs the API token: ``Authorization: Bearer <token>`` or the session
cookie that ``POST /api/auth/token`` sets. A browser that asks for a page without one is sent to
``/login``; API clients get 401 in the usual envelope (the UI shows its ``message``). WebSocket upgrades
are checked before routing and refused with the same HTTP status (401 without a valid credential). The
Origin of every request, WebSockets included, is checked earlier by :mod:`anyon.api.boundary`, so a page
on another site cannot ride on the user's cookie.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any
from urllib.parse import quote

import falcon
import falcon.asgi

from anyon.api.boundary import client_address
from anyon.api.envelope import ApiError, soft_error
from anyon.config.hosts import is_loopback
from anyon.config.model import AnyonConfig
from anyon.observability.metrics import Metrics
from anyon.security.auth import (
    SESSION_COOKIE,
    AccessGuard,
    Decision,
    FailureLimiter,
    TokenChecker,
    Verdict,
)
from anyon.security.secrets import SecretError, SecretProvider
from anyon.services.team.access import set_principal

log = logging.getLogger(__name__)

#: Paths that answer without credentials: liveness probes and the login step itself.
OPEN_PATHS = frozenset({"/api/health", "/login", "/api/auth/token"})
UNAUTHORIZED = (
    "Unauthorized: a valid API token is required (Authorization: Bearer <token>, or log in at /login)"
)
WS_SCOPE_FLAG = "anyon.ws_counted"


def auth_required(config: AnyonConfig) -> bool:
    return not is_loopback(config.server.host)


def build_guard(config: AnyonConfig, secrets: SecretProvider | None = None) -> AccessGuard | None:
    """The guard for a non-loopback listener, None on loopback; :class:`SecretError` without a token."""
    if not auth_required(config):
        return None
    provider = secrets or SecretProvider(config.auth)
    token = provider.api_token()
    if token is None:
        places = ", ".join(where for _, where in provider.candidates(config.auth.token_credential))
        raise SecretError(
            f"server.host {config.server.host} is reachable from other machines but no API token "
            f"{config.auth.token_credential!r} was found (looked in {places})"
        )
    log.info("API token authentication is on", extra={"token_source": token.source})
    return AccessGuard(TokenChecker(token), FailureLimiter())


def _wants_html(req: falcon.asgi.Request) -> bool:
    return (
        req.method in ("GET", "HEAD")
        and not req.path.startswith("/api")
        and "text/html" in (req.accept or "")
    )


def refuse(resp: falcon.asgi.Response, decision: Decision) -> None:
    """Answer 401 (or 429) in the envelope; the message never echoes what the client sent."""
    if decision.verdict is Verdict.LIMITED:
        resp.status = 429
        resp.set_header("Retry-After", str(max(1, math.ceil(decision.retry_after))))
        resp.media = soft_error("TooManyRequests: too many failed authentication attempts; try again later")
    else:
        resp.status = 401
        resp.set_header("WWW-Authenticate", 'Bearer realm="anyon"')
        resp.media = soft_error(UNAUTHORIZED)
    resp.complete = True


class AuthMiddleware:
    def __init__(self, guard: AccessGuard) -> None:
        self._guard = guard

    async def _decide(self, req: falcon.asgi.Request) -> Decision:
        args = (client_address(req), req.get_header("Authorization"), req.cookies.get(SESSION_COOKIE))
        if self._guard.blocking:  # user accounts: a database lookup
            decision = await asyncio.to_thread(self._guard.decide, *args)
        else:
            decision = self._guard.decide(*args)
        if decision.ok:
            # who is acting: read by the access scope, the audit log and new rows' owner
            req.context.principal = decision.principal
            set_principal(decision.principal)
        return decision

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if req.path in OPEN_PATHS or (
            req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method")
        ):
            return
        decision = await self._decide(req)
        if decision.ok:
            return
        if decision.verdict is Verdict.MISSING and _wants_html(req):
            resp.status = 303
            resp.set_header("Location", "/login?next=" + quote(req.relative_uri, safe=""))
            resp.complete = True
            return
        if decision.verdict is not Verdict.MISSING:
            log.warning(
                "refused %s %s from %s: %s", req.method, req.path, client_address(req), decision.verdict.value
            )
        refuse(resp, decision)

    async def process_request_ws(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        """Refuse the handshake with the HTTP status a REST call would get (401, or 429 while limited).

        The Origin was already checked by the boundary middleware, in both modes.
        """
        decision = await self._decide(req)
        if decision.ok:
            return
        if decision.verdict is Verdict.LIMITED:
            raise ApiError(429, "TooManyRequests: too many failed authentication attempts; try again later")
        if decision.verdict is not Verdict.MISSING:
            log.warning(
                "refused a WebSocket to %s from %s: %s", req.path, client_address(req), decision.verdict.value
            )
        raise ApiError(401, UNAUTHORIZED)


class MetricsMiddleware:
    """HTTP latency by route template, and the number of open SSE/WebSocket clients."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.started = time.perf_counter()

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        route = req.uri_template or ("(sink)" if resource is None and resp.status_code < 400 else "(none)")
        self._metrics.observe_http(req.method, route, resp.status_code, time.perf_counter() - started)
        if resp.sse is not None:
            resp.sse = self._counted(resp.sse)

    async def _counted(self, events: Any) -> Any:
        self._metrics.stream_opened("sse")
        try:
            async for event in events:
                yield event
        finally:
            self._metrics.stream_closed("sse")
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def process_resource_ws(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, resource: object, params: dict[str, Any]
    ) -> None:
        # Runs after authentication and routing: only accepted, routed connections count.
        self._metrics.stream_opened("websocket")
        req.scope[WS_SCOPE_FLAG] = True


class MeteredApp(falcon.asgi.App):  # type: ignore[type-arg]
    """Falcon's ASGI app, closing the WebSocket count when a counted connection's handler returns.

    Falcon has no middleware hook for the end of a WebSocket, so the end is observed here.
    """

    metrics: Metrics | None = None
    access_log: bool = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # type: ignore[override]
        if self.access_log and scope.get("type") == "websocket":
            send = _logged_handshake(scope, send)
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.metrics is not None and scope.get(WS_SCOPE_FLAG):
                self.metrics.stream_closed("websocket")


def _logged_handshake(scope: dict[str, Any], send: Any) -> Any:
    """``send`` that writes the access-log line of a WebSocket when its handshake is answered."""
    from anyon.api.access_log import log_websocket

    answered = False

    async def wrapped(message: dict[str, Any]) -> None:
        nonlocal answered
        kind = message.get("type")
        if not answered and kind in ("websocket.accept", "websocket.close", "websocket.http.response.start"):
            answered = True
            status = {"websocket.accept": 101, "websocket.close": 403}.get(kind, message.get("status", 0))
            log_websocket(scope, int(status))
        await send(message)

    return wrapped
