"""The login step: trade the API token once for an HttpOnly, SameSite=Strict session cookie.

A browser cannot put an ``Authorization`` header on an ``EventSource`` or a WebSocket, so the unchanged
web UI works behind the token through this cookie. ``GET /login`` is a page without scripts whose form
posts the token here; API clients can post JSON ``{"token": "..."}`` instead. When the listener is
loopback (no authentication), the routes still answer, saying so.
"""

from __future__ import annotations

import asyncio
import html
import math
from typing import Any
from urllib.parse import parse_qs, unquote

import falcon
import falcon.asgi

from anyon.api.boundary import client_address
from anyon.api.envelope import ApiError, ok, soft_error
from anyon.api.http import read_body
from anyon.api.validation import decode_json
from anyon.security.auth import SESSION_COOKIE, AccessGuard, Verdict

FORM = "application/x-www-form-urlencoded"


def _local_path(path: str) -> bool:
    return path.startswith("/") and not path.startswith("//") and "\\" not in path


def safe_next(target: str | None) -> str:
    r"""Where to go after logging in: a path on this server, else ``/``.

    Only printable ASCII without spaces, starting with exactly one ``/``: never ``//evil.example`` or
    ``/\evil.example`` (browsers read both as another host), ``https://…`` or ``javascript:``, and no
    tab, CR, LF or other control character (browsers drop tabs and newlines from URLs, so ``/<TAB>/x``
    becomes ``//x``; CR/LF in a ``Location`` header would split the response). The same holds once
    percent-decoded (``/%2F%2Fevil.example``, ``/%0d%0aSet-Cookie:…``), for whatever decodes it next.
    """
    if not target or not _local_path(target) or any(not ("!" <= c <= "~") for c in target):
        return "/"
    decoded = unquote(target)
    if not _local_path(decoded) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        return "/"
    return target


def _secure(req: falcon.asgi.Request) -> bool:
    return req.scheme == "https" or (req.get_header("X-Forwarded-Proto") or "").lower() == "https"


class AuthToken:
    """``POST /api/auth/token`` logs in (sets the cookie); ``DELETE`` logs out (clears it)."""

    def __init__(self, guard: AccessGuard | None) -> None:
        self._guard = guard

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        is_form = (req.content_type or "").split(";")[0].strip() == FORM
        raw = await read_body(req, min(req.context.max_body_bytes, 64 * 1024))
        if is_form:
            fields = parse_qs(raw.decode("utf-8", "replace"))
            token, target = fields.get("token", [""])[0], safe_next(fields.get("next", ["/"])[0])
        else:
            body = decode_json(raw)
            if not isinstance(body, dict) or not isinstance(body.get("token"), str):
                raise ApiError(400, 'BadRequest: expected a JSON object {"token": "<API token>"}')
            token, target = body["token"], "/"
        if self._guard is None:
            resp.media = ok({"auth_required": False})
            return
        if self._guard.blocking:  # user accounts: a database lookup
            decision = await asyncio.to_thread(self._guard.login, client_address(req), token.strip())
        else:
            decision = self._guard.login(client_address(req), token.strip())
        if decision.verdict is Verdict.LIMITED:
            resp.status = 429
            resp.set_header("Retry-After", str(max(1, math.ceil(decision.retry_after))))
            resp.media = soft_error(
                "TooManyRequests: too many failed authentication attempts; try again later"
            )
            return
        if not decision.ok:
            if is_form:
                resp.status = 303
                resp.set_header("Location", "/login?failed=1&next=" + falcon.uri.encode_value(target))
                return
            resp.status = 401
            resp.media = soft_error("Unauthorized: wrong API token")
            return
        checker = self._guard.checker
        resp.set_cookie(
            SESSION_COOKIE,
            self._guard.session_for(decision),
            max_age=checker.session_seconds,
            path="/",
            http_only=True,
            secure=_secure(req),
            same_site="Strict",
        )
        if is_form:
            resp.status = 303
            resp.set_header("Location", target)
            return
        resp.media = ok({"auth_required": True, "expires_in_seconds": checker.session_seconds})

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.unset_cookie(SESSION_COOKIE, path="/", same_site="Strict")
        resp.media = ok(None)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>anyon: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}}.err{{color:#b00020}}</style></head>
<body><h1>anyon</h1><p>This server needs its API token (ask whoever runs it).</p>{error}
<form method="post" action="/api/auth/token">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button></form></body></html>
"""


class LoginPage:
    """``GET /login``: a form that posts the token; no script, so it works under a strict CSP."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        failed = req.get_param("failed") is not None
        error = '<p class="err">Wrong token, or too many attempts: try again.</p>' if failed else ""
        resp.content_type = falcon.MEDIA_HTML
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Frame-Options", "DENY")
        resp.text = _PAGE.format(error=error, next=html.escape(safe_next(req.get_param("next")), quote=True))


def register(app: falcon.asgi.App[Any, Any], guard: AccessGuard | None) -> None:
    app.add_route("/api/auth/token", AuthToken(guard))
    app.add_route("/login", LoginPage())
