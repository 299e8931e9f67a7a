"""Cross-cutting HTTP concerns: CORS (spec §0.1) and per-request context."""

from __future__ import annotations

import falcon
import falcon.asgi


class CorsMiddleware:
    """CORS as the reference does it: an allow-list when configured (credentials allowed), else any origin.

    Preflight requests are answered here, before routing, so every route supports them.
    """

    def __init__(self, allowed_origins: tuple[str, ...]) -> None:
        self._allowed = frozenset(allowed_origins)

    def _origin_allowed(self, origin: str) -> bool:
        return not self._allowed or origin in self._allowed

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method"):
            origin = req.get_header("Origin") or ""
            if self._origin_allowed(origin):
                resp.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
                requested = req.get_header("Access-Control-Request-Headers")
                resp.set_header("Access-Control-Allow-Headers", requested or "*")
                resp.set_header("Access-Control-Max-Age", "600")
            resp.status = falcon.HTTP_204
            resp.complete = True

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, req_succeeded: bool
    ) -> None:
        origin = req.get_header("Origin")
        if not origin or not self._origin_allowed(origin):
            return
        if self._allowed:
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Allow-Credentials", "true")
            resp.append_header("Vary", "Origin")
        else:
            resp.set_header("Access-Control-Allow-Origin", "*")


class RequestContextMiddleware:
    """Puts per-app limits on ``req.context`` so helpers need no globals."""

    def __init__(self, max_body_bytes: int) -> None:
        self._max_body_bytes = max_body_bytes

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.max_body_bytes = self._max_body_bytes

    async def process_request_ws(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        req.context.max_body_bytes = self._max_body_bytes
