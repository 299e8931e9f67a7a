"""The front door (``GET /`` without a web UI) and interactive API docs at ``/api/docs``.

Someone who opens the address ``anyon serve`` prints should learn what answers there, even when no web
UI is configured: ``/`` then gives a short page saying so, how to point ``server.frontend_dir`` at a
built UI, and where the API is described. ``/api/docs`` renders ``/api/openapi.json`` (OpenAPI 3.1) with
Swagger UI 5, whose built files ship in the ``swagger-ui-py`` package and are served by this server:
nothing is fetched from another origin at run time. Only the package's static folder is used (found
without importing the package, whose framework adapters are not needed), only the few files the page
needs are served (an allow-list, never a path from the request), and the pages carry a
Content-Security-Policy that lets scripts come only from this origin (the page's own start-up script is
a served file, not inline).
"""

from __future__ import annotations

import html
import importlib.util
import os
from typing import Any

import falcon
import falcon.asgi

from anyon.api.http import run_sync
from anyon.api.validation import api_operation

DOCS_PATH = "/api/docs"
#: Swagger UI files the page uses: name -> content type.
_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
_INIT_JS = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>anyon API</title>
<link rel="icon" type="image/png" href="{DOCS_PATH}/favicon-32x32.png">
<link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
<script src="{DOCS_PATH}/init.js"></script>
</body>
</html>
""".encode()


def front_door_page(version: str) -> bytes:
    """The page ``/`` answers when no web UI is configured."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>anyon</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem;
       line-height: 1.5; color: #1f2328; }}
code, pre {{ background: #f3f4f6; border-radius: 4px; padding: 0 .25rem; }}
pre {{ padding: .75rem; overflow-x: auto; }}
</style>
</head>
<body>
<h1>anyon is running</h1>
<p>This is the server behind the Anyon task board (version {html.escape(version)}): it keeps your
projects and tasks, and runs coding agents in a git worktree per attempt.</p>
<h2>The web UI is not configured</h2>
<p>This server serves the board's web UI when it knows where the built UI is. Point
<code>server.frontend_dir</code> at the folder that holds its <code>index.html</code>, then restart:</p>
<pre>[server]
frontend_dir = "/path/to/frontend/dist"</pre>
<p>in <code>/etc/anyon/settings.toml</code> (or the file given with <code>--settings</code>), or in the
environment: <code>ANYON_SERVER__FRONTEND_DIR=/path/to/frontend/dist anyon serve</code>.</p>
<h2>The API</h2>
<ul>
<li><a href="{DOCS_PATH}">Interactive API documentation</a></li>
<li><a href="/api/openapi.json">The OpenAPI document</a></li>
<li><a href="/api/health">Health check</a></li>
</ul>
</body>
</html>
""".encode()


def _safe_headers(resp: falcon.asgi.Response, csp: str) -> None:
    resp.set_header("Content-Security-Policy", csp)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("X-Frame-Options", "DENY")
    resp.set_header("Referrer-Policy", "no-referrer")


def serve_front_door(resp: falcon.asgi.Response, page: bytes) -> None:
    resp.content_type = falcon.MEDIA_HTML
    resp.data = page
    _safe_headers(resp, PAGE_CSP)


class ApiDocs:
    """``GET /api/docs``: Swagger UI on this server's OpenAPI document."""

    @api_operation(data="raw-html")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.data = _DOCS_PAGE
        _safe_headers(resp, DOCS_CSP)


def swagger_ui_static_dir() -> str:
    """The folder of Swagger UI's built files inside the installed ``swagger-ui-py`` distribution."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed (pip install swagger-ui-py)")
    return os.path.join(next(iter(spec.submodule_search_locations)), "static")


class ApiDocsAsset:
    """``GET /api/docs/{name}``: one of the allow-listed Swagger UI files, or the page's start-up script."""

    def __init__(self) -> None:
        self._root = swagger_ui_static_dir()
        self._cache: dict[str, bytes] = {"init.js": _INIT_JS}

    def _load(self, name: str) -> bytes:
        with open(os.path.join(self._root, name), "rb") as handle:
            return handle.read()

    @api_operation(data="raw-text")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str) -> None:
        if name == "init.js":
            content_type = "text/javascript; charset=utf-8"
        elif name in _ASSETS:
            content_type = _ASSETS[name]
        else:
            raise falcon.HTTPNotFound(description=f"no documentation file named {name[:64]!r}")
        if name not in self._cache:
            self._cache[name] = await run_sync(self._load, name)
        resp.content_type = content_type
        resp.data = self._cache[name]
        resp.set_header("Cache-Control", "public, max-age=3600")
        _safe_headers(resp, DOCS_CSP)


def register(app: falcon.asgi.App[Any, Any]) -> None:
    app.add_route(DOCS_PATH, ApiDocs())
    app.add_route(DOCS_PATH + "/{name}", ApiDocsAsset())
