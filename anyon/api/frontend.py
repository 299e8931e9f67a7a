"""Serves the built web UI on the same origin, with the SPA fallback of spec §0.1.

Any GET outside ``/api`` is a file of ``server.frontend_dir``; a path that names no file gets
``index.html`` (the UI routes on the client). Without an ``index.html`` the answer is a plain 404.
Without any ``frontend_dir``, ``/`` answers the front door page (:mod:`anyon.api.docs`) instead, so the
address the server prints never shows a bare 404; every other path is still a plain 404.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi

from anyon.api.docs import serve_front_door
from anyon.api.http import run_sync


class FrontendSink:
    def __init__(self, frontend_dir: str | None, front_door: bytes | None = None) -> None:
        self._root = Path(frontend_dir).resolve() if frontend_dir else None
        self._front_door = front_door

    def _resolve(self, path: str) -> Path | None:
        if self._root is None:
            return None
        candidate = (self._root / path.lstrip("/")).resolve()
        if candidate.is_relative_to(self._root) and candidate.is_file():
            return candidate
        index = self._root / "index.html"
        return index if index.is_file() else None

    async def __call__(self, req: falcon.asgi.Request, resp: falcon.asgi.Response | None, **_: Any) -> None:
        assert resp is not None  # sinks are not used for WebSocket routes here
        if req.method not in ("GET", "HEAD"):
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        if self._root is None and self._front_door is not None and req.path in ("/", "/index.html"):
            serve_front_door(resp, self._front_door)
            return
        target = await run_sync(self._resolve, req.path)
        if target is None:
            resp.status = falcon.HTTP_404
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = "404 Not Found"
            return
        resp.content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        resp.data = await run_sync(target.read_bytes)
