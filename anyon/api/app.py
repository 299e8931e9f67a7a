"""``create_app(deployment)``: the Falcon ASGI application (the shape of Falcon's ASGI tutorial).

The deployment owns the services; this module only wires resources to routes, installs the error
handlers that keep every failure inside the envelope, and starts/stops the deployment with the
ASGI lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import falcon
import falcon.asgi

from anyon import __version__
from anyon.api import json_media, routes
from anyon.api.access_log import AccessLogMiddleware
from anyon.api.auth_middleware import AuthMiddleware, MeteredApp, MetricsMiddleware, build_guard
from anyon.api.boundary import BoundaryMiddleware
from anyon.api.docs import front_door_page
from anyon.api.envelope import ApiError, soft_error, typed_error
from anyon.api.etag import ETagMiddleware
from anyon.api.frontend import FrontendSink
from anyon.api.middleware import CorsMiddleware, RequestContextMiddleware
from anyon.api.streams.ws import deny
from anyon.api.team_middleware import TeamMiddleware
from anyon.deployment.base import Deployment
from anyon.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from anyon.observability.metrics import Metrics, services_collector
from anyon.security.account_guard import AccountGuard
from anyon.services.errors import ServiceError
from anyon.services.git.errors import GitServiceError
from anyon.services.runners.base import RunnerError, RunnerUnavailable

#: Seconds a client is told to wait before retrying a request the process runtime could not serve.
RUNTIME_RETRY_AFTER_SECONDS = 10

log = logging.getLogger(__name__)


class LifespanMiddleware:
    """Starts the deployment's background work when the server starts, stops it on shutdown."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment

    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        await self._deployment.start()

    async def process_shutdown(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        await self._deployment.stop()


async def _handle_api_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response | None,
    ex: ApiError,
    params: dict[str, Any],
    ws: Any = None,
) -> None:
    if resp is None:
        if ws is not None:  # before the handshake: an enveloped HTTP refusal (401, 403, ...)
            await deny(req, ws, ex.status, ex.message)
        return
    resp.status = ex.status
    resp.media = soft_error(ex.message)


async def _handle_service_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response | None,
    ex: ServiceError,
    params: dict[str, Any],
    ws: Any = None,
) -> None:
    """Soft errors answer 200 + ``success: false``; NotFound/Conflict keep the envelope with 404/409."""
    if resp is None:
        if ws is not None:
            await ws.close(4404 if ex.status == 404 else 1008)
        return
    resp.status = ex.status
    resp.media = typed_error(ex.error_data) if ex.error_data is not None else soft_error(ex.message)


async def _handle_http_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response | None,
    ex: falcon.HTTPError,
    params: dict[str, Any],
    ws: Any = None,
) -> None:
    message = ex.title or "Error"
    if ex.description:
        message = f"{message}: {ex.description}"
    if resp is None:
        if ws is not None:
            await deny(req, ws, ex.status_code, message)
        return
    resp.status = ex.status
    resp.media = soft_error(message)
    headers = ex.headers or {}
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    for name, value in pairs:
        resp.set_header(str(name), str(value))


async def _handle_git_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response | None,
    ex: GitServiceError,
    params: dict[str, Any],
    ws: Any = None,
) -> None:
    """Git failures are soft errors (HTTP 200); conflicts carry the typed ``error_data`` of spec §1.5."""
    if resp is None:
        if ws is not None:
            await ws.close(1011)
        return
    error_data = ex.to_error_data()
    resp.status = 200
    resp.media = typed_error(error_data) if error_data is not None else soft_error(ex.message)


async def _handle_runner_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response | None,
    ex: RunnerError,
    params: dict[str, Any],
    ws: Any = None,
) -> None:
    """The process runtime failed a request: 503 + Retry-After when it does not answer, else a soft error.

    A Docker Engine outage is not the server's bug (never a 500): the request may be retried as is once
    the Engine is back; what could be settled without it was settled before the error was raised.
    """
    if resp is None:
        if ws is not None:
            await ws.close(1013 if isinstance(ex, RunnerUnavailable) else 1011)
        return
    if isinstance(ex, RunnerUnavailable):
        log.warning("%s %s: the process runtime does not answer: %s", req.method, req.path, ex)
        resp.status = 503
        resp.set_header("Retry-After", str(RUNTIME_RETRY_AFTER_SECONDS))
        resp.media = soft_error(f"ServiceUnavailable: {ex}")
        return
    resp.status = 200
    resp.media = soft_error(str(ex))


async def _handle_unexpected(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response | None,
    ex: Exception,
    params: dict[str, Any],
    ws: Any = None,
) -> None:
    log.exception("unhandled error on %s %s", req.method, req.path)
    if resp is None:
        if ws is not None:
            await ws.close(1011)
        return
    resp.status = 500
    resp.media = soft_error(f"InternalError: {type(ex).__name__}")


class MetricsResource:
    """``GET /metrics``: the Prometheus text format (behind the token when the server is reachable)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = await asyncio.to_thread(self._metrics.render)
        resp.content_type = METRICS_CONTENT_TYPE


def create_app(deployment: Deployment) -> falcon.asgi.App[Any, Any]:
    config = deployment.config
    guard = build_guard(config)  # None on loopback; SecretError when reachable without a token
    team = deployment.services.team  # cloud mode: user accounts next to the API token
    if guard is not None and team is not None:
        guard = AccountGuard(guard.checker, team.accounts, guard.limiter)
    metrics = Metrics(config.deployment.mode)
    metrics.add_collector(services_collector(config.deployment.mode, deployment.services))
    # attempt-start latency: the engine reports request -> first output byte of the agent
    deployment.services.executions.timings.on_first_byte = metrics.observe_attempt_start
    server = config.server
    middleware: list[Any] = [
        # first: a request from a foreign page or through a foreign Host goes no further (THREAT-MODEL rule 5)
        BoundaryMiddleware(
            listen_host=server.host,
            public_hosts=server.public_hosts,
            allowed_origins=server.cors_allowed_origins,
            trusted_proxies=server.trusted_proxies,
        ),
        MetricsMiddleware(metrics),
        CorsMiddleware(config.server.cors_allowed_origins),
        RequestContextMiddleware(config.server.max_body_bytes),
    ]
    if guard is not None:
        middleware.append(AuthMiddleware(guard))
    # response hooks run in reverse order: the team's filtering of lists first, then the ETag of what this
    # account receives; every refusal above is never a 200, so it never gets an ETag or a 304
    middleware.append(ETagMiddleware())
    if guard is not None and team is not None:
        middleware.append(TeamMiddleware(team))  # project access, stream revocation, audit
    middleware.append(LifespanMiddleware(deployment))
    if config.logging.access_log:
        middleware.insert(0, AccessLogMiddleware())  # first: refused requests get their line too
    app = MeteredApp(middleware=middleware)
    app.metrics = metrics
    app.access_log = config.logging.access_log
    app.req_options.strip_url_path_trailing_slash = False
    app.resp_options.secure_cookies_by_default = False
    json_media.install(app)
    # Most specific first: Falcon picks the handler of the nearest class in the exception's MRO.
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(falcon.HTTPError, _handle_http_error)
    app.add_error_handler(ApiError, _handle_api_error)
    app.add_error_handler(ServiceError, _handle_service_error)
    app.add_error_handler(GitServiceError, _handle_git_error)
    app.add_error_handler(RunnerError, _handle_runner_error)
    routes.register(app, deployment, guard)
    app.add_route("/metrics", MetricsResource(metrics))
    front_door = front_door_page(__version__)
    app.add_sink(FrontendSink(config.server.frontend_dir, front_door), prefix=r"^/(?!api(/|$))")
    return app
