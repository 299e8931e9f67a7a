"""A small GitHub-compatible HTTP server on 127.0.0.1: a stand-in for the external service, not for anyon.

It speaks the parts of the REST API and the OAuth device flow anyon uses, keeps its state in plain
attributes the tests read and change (PRs, repositories, failure modes), and records every request so a
test can check what reached "GitHub" (the token only ever in the Authorization header).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.github import git_http

TOKEN = "ghs_standin_token_0123456789abcdef"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class State:
    token: str = TOKEN
    #: more tokens it accepts (one per account of a team's server)
    tokens: set[str] = field(default_factory=set)
    login: str = "octo"
    repos: list[dict[str, Any]] = field(default_factory=list)
    known_repos: set[str] = field(default_factory=lambda: {"octo/widget"})
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    device_answers: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    rate_limited: str | None = None  # "403" (X-RateLimit-Remaining 0) or "429" (Retry-After)
    delay: float = 0.0  # seconds before answering (timeouts)
    fail_status: int | None = None  # answer every API call with this status
    pull_200: int = 0
    pull_304: int = 0
    #: a folder of bare repositories (<owner>/<repo>.git) served over git's smart HTTP; None: git is refused
    git_root: Path | None = None


class StandIn:
    def __init__(self) -> None:
        self.state = State()
        self.url = ""
        self.lock = threading.Lock()

    def add_pull(
        self, owner: str, repo: str, head: str, base: str, title: str, body: str = ""
    ) -> dict[str, Any]:
        number = len(self.state.pulls) + 1
        pr = {
            "number": number,
            "html_url": f"{self.url}/{owner}/{repo}/pull/{number}",
            "state": "open",
            "merged": False,
            "merged_at": None,
            "merge_commit_sha": None,
            "title": title,
            "head": {"ref": head, "label": f"{owner}:{head}"},
            "base": {"ref": base},
            "_repo": f"{owner}/{repo}",
            "_body": body,
            "_version": 1,
        }
        self.state.pulls[number] = pr
        return pr

    def merge(self, number: int) -> None:
        with self.lock:
            pr = self.state.pulls[number]
            pr.update(
                state="closed", merged=True, merged_at="2026-01-02T03:04:05Z", merge_commit_sha="c0ffee" * 6
            )
            pr["_version"] += 1

    def seen(self, text: str) -> list[Recorded]:
        """Requests whose path or body contains ``text`` (the token must never be there)."""
        return [r for r in self.state.requests if text in r.path or text.encode() in r.body]


def _public(pr: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pr.items() if not k.startswith("_")}


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    state = standin.state

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
            body = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()

        def _git(self, method: str, path: str, query: str, body: bytes) -> None:
            assert state.git_root is not None
            if not git_http.accepted(self.headers, {state.token, *state.tokens}):
                return self._reply(
                    401, {"message": "Bad credentials"}, {"WWW-Authenticate": 'Basic realm="GitHub"'}
                )
            status, headers, payload = git_http.serve(state.git_root, method, path, query, self.headers, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _handle(self, method: str) -> None:
            body = self._body()
            state.requests.append(Recorded(method, self.path, dict(self.headers.items()), body))
            if state.delay:
                time.sleep(state.delay)
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            path = url.path
            if state.git_root is not None and ".git/" in path:
                return self._git(method, path, url.query, body)
            if path.endswith(".git/info/refs"):  # git smart HTTP: always asks for (other) credentials
                return self._reply(
                    401, {"message": "Bad credentials"}, {"WWW-Authenticate": 'Basic realm="GitHub"'}
                )
            if path == "/login/device/code" and method == "POST":
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if form.get("client_id") != "standin-client":
                    return self._reply(200, {"error": "incorrect_client_credentials"})
                return self._reply(
                    200,
                    {
                        "device_code": "dev-code-1",
                        "user_code": "ABCD-1234",
                        "verification_uri": f"{standin.url}/login/device",
                        "expires_in": 900,
                        "interval": 5,
                    },
                )
            if path == "/login/oauth/access_token" and method == "POST":
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if form.get("device_code") != "dev-code-1":
                    return self._reply(200, {"error": "bad_verification_code"})
                answer = (
                    state.device_answers.pop(0) if state.device_answers else {"access_token": state.token}
                )
                return self._reply(200, answer)
            if state.fail_status:
                return self._reply(state.fail_status, {"message": "Server Error"})
            if state.rate_limited == "429":
                return self._reply(429, {"message": "slow down"}, {"Retry-After": "7"})
            if state.rate_limited == "403":
                reset = str(int(time.time()) + 30)
                headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
                return self._reply(403, {"message": "API rate limit exceeded"}, headers)
            if self.headers.get("Authorization") not in {f"Bearer {t}" for t in {state.token, *state.tokens}}:
                return self._reply(401, {"message": "Bad credentials"})
            if path == "/repos/octo/renamed/pulls/1":
                return self._reply(
                    301, {"message": "Moved Permanently"}, {"Location": "https://evil.example/"}
                )
            if path == "/user":
                return self._reply(200, {"login": state.login, "id": 42})
            if path == "/user/emails":
                return self._reply(200, [{"email": "octo@example.com", "primary": True}])
            if path == "/user/repos":
                page, per_page = int(query.get("page", 1)), int(query.get("per_page", 30))
                chunk = state.repos[(page - 1) * per_page : page * per_page]
                return self._reply(200, chunk)
            match = re.match(r"^/repos/([^/]+)/([^/]+)/pulls(?:/(\d+))?$", path)
            if match:
                full = f"{match.group(1)}/{match.group(2)}"
                if full not in state.known_repos:
                    return self._reply(404, {"message": "Not Found"})
                if match.group(3):
                    pr = state.pulls.get(int(match.group(3)))
                    if pr is None or pr["_repo"] != full:
                        return self._reply(404, {"message": "Not Found"})
                    etag = f'"pr-{pr["number"]}-v{pr["_version"]}"'
                    if self.headers.get("If-None-Match") == etag:
                        state.pull_304 += 1
                        return self._reply(304, None, {"ETag": etag})
                    state.pull_200 += 1
                    return self._reply(200, _public(pr), {"ETag": etag, "X-RateLimit-Remaining": "4999"})
                if method == "GET":
                    head = query.get("head", "")
                    found = [
                        _public(p)
                        for p in state.pulls.values()
                        if p["_repo"] == full and p["head"]["label"] == head
                    ]
                    return self._reply(200, found)
                payload = json.loads(body or b"{}")
                label = f"{match.group(1)}:{payload.get('head')}"
                if any(
                    p["head"]["label"] == label and p["state"] == "open" and p["_repo"] == full
                    for p in state.pulls.values()
                ):
                    return self._reply(
                        422,
                        {
                            "message": "Validation Failed",
                            "errors": [{"message": f"A pull request already exists for {label}."}],
                        },
                    )
                with standin.lock:
                    pr = standin.add_pull(
                        match.group(1),
                        match.group(2),
                        payload["head"],
                        payload["base"],
                        payload["title"],
                        payload.get("body", ""),
                    )
                return self._reply(201, _public(pr))
            return self._reply(404, {"message": "Not Found"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout tests) is expected, not news


@contextmanager
def github_standin() -> Iterator[StandIn]:
    standin = StandIn()
    server = _Server(("127.0.0.1", 0), _handler(standin))
    server.daemon_threads = True
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="github-standin", daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
