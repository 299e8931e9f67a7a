"""The access log: one line per HTTP request, logger ``anyon.access`` (``logging.access_log``).

Each line names the method, the **route template** Falcon matched (``/api/projects/{project_id}``, never
the raw path with its ids, and never the query string: a browser's stream may carry its credential in
one), the status, the duration and a request id. The id is also sent back as ``X-Request-Id`` so that a
user's report can be matched to its line; an id the client sent is reused only when it is short and
plain (letters, digits, ``-``, ``_``, ``.``), so nothing a client writes can forge or split a log line.

uvicorn's own access log stays off: it logs the raw path and query string.
WebSocket upgrades are logged when the handshake is answered, with method ``WS`` and status 101 when
accepted; a refused one gets the status the refusal sent (403, 401, …) and no ERROR line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import falcon
import falcon.asgi

log = logging.getLogger("anyon.access")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
REQUEST_ID_HEADER = "X-Request-Id"


def request_id(req: falcon.asgi.Request) -> str:
    sent = req.get_header(REQUEST_ID_HEADER)
    if sent is not None and _CLIENT_ID.match(sent):
        return sent
    return uuid.uuid4().hex[:16]


def route_of(req: falcon.asgi.Request, resource: object, status: int) -> str:
    """The matched route template; the web UI's files, unknown paths and requests refused before
    routing (foreign Host/Origin) are named, not spelled out."""
    if req.uri_template:
        return req.uri_template
    return "(frontend)" if resource is not None or status < 400 else "(not routed)"


class AccessLogMiddleware:
    """Placed first, so requests that the boundary or the token check refuse are logged too."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.access_started = time.perf_counter()
        req.context.request_id = request_id(req)
        resp.set_header(REQUEST_ID_HEADER, req.context.request_id)

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "access_started", None)
        if started is None:
            return
        status = resp.status_code
        write(req.method, route_of(req, resource, status), status, started, req.context.request_id, req)

    async def process_request_ws(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        req.context.access_started = time.perf_counter()
        req.context.request_id = request_id(req)
        req.scope["anyon.access"] = req


def write(method: str, route: str, status: int, started: float, rid: str, req: Any) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info(
        "%s %s %d %.1fms",
        method,
        route,
        status,
        duration_ms,
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": rid,
            "client": getattr(req, "remote_addr", None),
        },
    )


def log_websocket(scope: dict[str, Any], status: int) -> None:
    """Write the line of a WebSocket once its handshake was answered (see ``MeteredApp``)."""
    req = scope.get("anyon.access")
    if req is None:
        return
    route = req.uri_template or "(not routed)"
    write("WS", route, status, req.context.access_started, req.context.request_id, req)
