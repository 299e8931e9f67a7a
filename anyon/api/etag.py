"""ETags on JSON reads: a client that already has the answer gets ``304 Not Modified`` and no body.

The UI polls reads such as the board (``GET /api/tasks?project_id=``, ~300 kB for 1,000 tasks). Every
successful JSON ``GET`` under ``/api`` gets a strong ``ETag`` (a hash of the body it would send) and
``Cache-Control: no-cache`` (a browser may keep the answer but asks again each time, sending
``If-None-Match``); when the tag matches, the answer is 304 with no body, and the browser hands its
stored copy to the page as a 200, so the contract's envelope reaches the UI unchanged. The tag comes
from the body itself, so it can never be stale; the saving is the transfer and the client's parsing, not
the query. Middleware order: this runs after authentication and the boundary checks (a refused request
is never a 200), and only on routed answers with a JSON media body.
"""

from __future__ import annotations

import hashlib

import falcon
import falcon.asgi

CACHE_CONTROL = "no-cache"


def _tag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: a weak comparison against each listed tag, or ``*``."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


class ETagMiddleware:
    """Tags JSON ``GET`` answers under ``/api``; a matching ``If-None-Match`` turns them into a 304."""

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, req_succeeded: bool
    ) -> None:
        if (
            req.method not in ("GET", "HEAD")
            or not req_succeeded
            or resp.status_code != 200
            or resp.media is None
            or resp.data is not None
            or resp.text is not None
            or resp.stream is not None
            or resp.sse is not None
            or not req.path.startswith("/api/")
        ):
            return
        body = await resp.render_body()
        if body is None:
            return
        etag = _tag(body)
        resp.set_header("ETag", etag)
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", CACHE_CONTROL)
        condition = req.get_header("If-None-Match")
        if condition is not None and matches(condition, etag):
            resp.status = falcon.HTTP_304
