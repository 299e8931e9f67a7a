"""Cross-cutting HTTP concerns: CORS (spec §0.1, narrowed: see ``CorsMiddleware``) and per-request context."""

from __future__ import annotations

import falcon
import falcon.asgi

from anyon.api.boundary import OriginAllowList


class CorsMiddleware:
    """CORS for the origins listed in ``server.cors_allowed_origins``, and for nobody else.

    A listed origin gets its own value echoed with credentials allowed (``*`` is never sent: with it any
    page could read the answers). The UI served by this server is same-origin and needs no CORS at all.
    Other origins never get here: :class:`~anyon.api.boundary.BoundaryMiddleware` refuses them first.
    Preflight requests are answered here, before routing, so every route supports them.
    """

    def __init__(self, allowed_origins: tuple[str, ...]) -> None:
        self._allowed = OriginAllowList(allowed_origins)

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method"):
            origin = req.get_header("Origin")
            if origin is not None and origin in self._allowed:
                resp.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
                requested = req.get_header("Access-Control-Request-Headers")
                if requested:
                    resp.set_header("Access-Control-Allow-Headers", requested)
                resp.set_header("Access-Control-Max-Age", "600")
            resp.status = falcon.HTTP_204
            resp.complete = True

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.append_header("Vary", "Origin")
        origin = req.get_header("Origin")
        if origin is None or origin not in self._allowed:
            return
        resp.set_header("Access-Control-Allow-Origin", origin)
        resp.set_header("Access-Control-Allow-Credentials", "true")


class RequestContextMiddleware:
    """Puts per-app limits on ``req.context`` so helpers need no globals."""

    def __init__(self, max_body_bytes: int) -> None:
        self._max_body_bytes = max_body_bytes

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.max_body_bytes = self._max_body_bytes

    async def process_request_ws(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        req.context.max_body_bytes = self._max_body_bytes
