"""A thin GitHub REST client over httpx: typed errors, timeouts, rate limits, conditional requests.

Why not a full client library: the server needs a dozen calls, and what matters is around them — one
configurable base URL (GitHub Enterprise), a timeout on every request, the ``ETag``/``If-None-Match``
and ``X-RateLimit-*``/``Retry-After`` headers the PR monitor lives by, and errors that can never carry
the token. httpx gives pooled connections, per-phase timeouts and no redirect following by default (a
redirect to another host can never receive the ``Authorization`` header).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

USER_AGENT = "anyon"
#: what a GitHub token can be (ghp_…, gho_…, github_pat_…, classic hex): printable ASCII, no spaces
_TOKEN = re.compile(r"^[\x21-\x7e]{1,1024}$")
API_VERSION = "2022-11-28"


class GitHubError(Exception):
    """A GitHub call failed. ``kind`` is one of the names below; the message never holds the token.

    Kinds: ``unauthorized`` (401: expired, revoked or wrong token), ``forbidden`` (403 without a rate
    limit), ``not_found`` (404), ``unprocessable`` (422, e.g. a PR that already exists), ``rate_limited``
    (403/429 with a rate limit; ``retry_after`` seconds), ``unreachable`` (connection, timeout, TLS),
    ``bad_response`` (anything else, redirects included: they are never followed).
    """

    def __init__(self, kind: str, message: str, *, status: int | None = None, retry_after: float = 0.0):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Response:
    status: int
    data: Any
    etag: str | None
    headers: Mapping[str, str]


def rate_limit_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait before the next call, from ``Retry-After`` or an exhausted ``X-RateLimit-*``."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return 60.0
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            reset = float(headers.get("x-ratelimit-reset", ""))
        except ValueError:
            return 60.0
        return max(0.0, reset - (time.time() if now is None else now))
    return None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        text = str(body.get("message") or body.get("error_description") or body.get("error") or "")
        errors = body.get("errors")
        if isinstance(errors, list):
            details = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
            if details:
                text = f"{text}: {'; '.join(details)}" if text else "; ".join(details)
        return text[:500] or f"HTTP {response.status_code}"
    return f"HTTP {response.status_code}"


class GitHubClient:
    """Calls the REST API at ``api_url`` and the OAuth endpoints at ``web_url``; thread-safe."""

    def __init__(self, api_url: str, web_url: str, timeout: float) -> None:
        self.api_url = api_url.rstrip("/")
        self.web_url = web_url.rstrip("/")
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # no proxy or .netrc from the environment decides where the token goes
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        url: str,
        *,
        token: str | None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        etag: str | None = None,
    ) -> Response:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if data is not None:
            headers["Accept"] = "application/json"
        if token:
            if not _TOKEN.match(token):
                raise GitHubError(
                    "unauthorized", "The GitHub token has characters no GitHub token has; set it again"
                )
            headers["Authorization"] = f"Bearer {token}"
        if etag:
            headers["If-None-Match"] = etag
        where = url.split("?", 1)[0]
        try:
            response = self._http.request(method, url, headers=headers, json=json, data=data, params=params)
        except httpx.TimeoutException:
            raise GitHubError("unreachable", f"GitHub did not answer in time ({method} {where})") from None
        except httpx.HTTPError as exc:
            raise GitHubError(
                "unreachable", f"GitHub is unreachable ({method} {where}): {type(exc).__name__}"
            ) from None
        status = response.status_code
        lowered = {k.lower(): v for k, v in response.headers.items()}
        if status == 304:
            return Response(status, None, lowered.get("etag") or etag, lowered)
        if 300 <= status < 400:  # never followed: a redirect could lead the token to another host
            raise GitHubError(
                "bad_response",
                f"GitHub answered {status} for {where} (a renamed or moved repository?); not followed",
                status=status,
            )
        if status >= 400:
            wait = rate_limit_wait(lowered)
            if status == 429 or (status == 403 and wait is not None):
                raise GitHubError(
                    "rate_limited",
                    f"GitHub rate limit reached; retry in {wait or 60:.0f} s",
                    status=status,
                    retry_after=wait if wait is not None else 60.0,
                )
            kind = {401: "unauthorized", 403: "forbidden", 404: "not_found", 422: "unprocessable"}.get(
                status, "bad_response"
            )
            raise GitHubError(kind, f"GitHub answered {status}: {_message(response)}", status=status)
        try:
            payload = response.json() if response.content else None
        except ValueError:
            raise GitHubError("bad_response", f"GitHub sent a body that is not JSON ({where})") from None
        return Response(status, payload, lowered.get("etag"), lowered)

    def api(self, method: str, path: str, token: str | None, **kw: Any) -> Response:
        return self._send(method, f"{self.api_url}{path}", token=token, **kw)

    # -- OAuth device flow (web host) ------------------------------------------------------------
    def device_code(self, client_id: str, scope: str) -> dict[str, Any]:
        response = self._send(
            "POST",
            f"{self.web_url}/login/device/code",
            token=None,
            data={"client_id": client_id, "scope": scope},
        )
        if not isinstance(response.data, dict) or "device_code" not in response.data:
            raise GitHubError("bad_response", "GitHub's device-code answer has no device_code")
        return response.data

    def device_token(self, client_id: str, device_code: str) -> dict[str, Any]:
        response = self._send(
            "POST",
            f"{self.web_url}/login/oauth/access_token",
            token=None,
            data={
                "client_id": client_id,
                "device_code": device_code,
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            },
        )
        if not isinstance(response.data, dict):
            raise GitHubError("bad_response", "GitHub's token answer is not an object")
        return response.data

    # -- REST --------------------------------------------------------------------------------------
    def user(self, token: str) -> dict[str, Any]:
        data = self.api("GET", "/user", token).data
        if not isinstance(data, dict):
            raise GitHubError("bad_response", "GitHub's /user answer is not an object")
        return data

    def primary_email(self, token: str) -> str | None:
        try:
            emails = self.api("GET", "/user/emails", token).data
        except GitHubError as exc:
            if exc.kind in ("forbidden", "not_found"):  # the token may lack the user:email scope
                return None
            raise
        if isinstance(emails, list):
            for item in emails:
                if isinstance(item, dict) and item.get("primary"):
                    return str(item.get("email")) if item.get("email") else None
        return None

    def repositories(self, token: str, page: int, per_page: int = 100) -> list[dict[str, Any]]:
        data = self.api(
            "GET",
            "/user/repos",
            token,
            params={"page": page, "per_page": per_page, "sort": "updated"},
        ).data
        if not isinstance(data, list):
            raise GitHubError("bad_response", "GitHub's repository list is not an array")
        return [r for r in data if isinstance(r, dict)]

    def create_pull(
        self, token: str, owner: str, repo: str, title: str, body: str | None, head: str, base: str
    ) -> dict[str, Any]:
        payload = {"title": title, "body": body or "", "head": head, "base": base}
        data = self.api("POST", f"/repos/{owner}/{repo}/pulls", token, json=payload).data
        if not isinstance(data, dict):
            raise GitHubError("bad_response", "GitHub's pull request answer is not an object")
        return data

    def pulls_for_branch(self, token: str, owner: str, repo: str, branch: str) -> list[dict[str, Any]]:
        data = self.api(
            "GET",
            f"/repos/{owner}/{repo}/pulls",
            token,
            params={"head": f"{owner}:{branch}", "state": "all", "per_page": 30},
        ).data
        if not isinstance(data, list):
            raise GitHubError("bad_response", "GitHub's pull request list is not an array")
        return [p for p in data if isinstance(p, dict)]

    def pull(self, token: str, owner: str, repo: str, number: int, etag: str | None = None) -> Response:
        return self.api("GET", f"/repos/{owner}/{repo}/pulls/{number}", token, etag=etag)
