"""The browser boundary, played by an attacker's web page against a real uvicorn on 127.0.0.1.

A page the user happens to visit can send simple cross-origin requests (``text/plain`` POSTs need no
preflight), open WebSockets (no CORS there), and rebind its own name to 127.0.0.1. Each test sends
what such a page would send, with the headers a browser would add, and checks the refusal *and* that
nothing changed: no project row, no repository on disk, the agent profiles byte for byte the same.
The UI's own calls (same-origin, or through a reverse proxy on a configured public host) keep working.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from anyon.api.boundary import HostAllowList, TrustedProxies, same_origin
from anyon.api.resources.auth_token import safe_next
from anyon.config.hosts import parse_host_port, parse_origin
from anyon.security.auth import SESSION_COOKIE
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_auth import CANARY, bearer, reachable_config

EVIL = "https://evil.example"
ENVELOPE_KEYS = {"success", "data", "error_data", "message"}
#: what an attacker would write into the profiles to run a command on the user's machine
PAYLOAD_PROFILES = {
    "executors": {
        "CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": {"base_command_override": "touch /tmp/anyon-pwned"}}}
    }
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path, server={"shutdown_timeout_seconds": 1.0})) as live:
        yield live


def port_of(server: LiveServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def refused(response: httpx.Response, status: int = 403) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == ENVELOPE_KEYS and body["success"] is False and body["data"] is None
    assert not any(name.lower().startswith("access-control-allow") for name in response.headers)
    return str(body["message"])


def project_body(tmp_path: Path, name: str = "p") -> dict[str, Any]:
    return {"name": name, "git_repo_path": str(tmp_path / name), "use_existing_repo": False}


class Snapshot:
    """What an attack must leave alone: project rows, the repository folder, the profiles file."""

    def __init__(self, server: LiveServer, tmp_path: Path) -> None:
        self.server, self.tmp_path = server, tmp_path
        self.projects = server.ok("GET", "/api/projects")
        self.profiles = server.ok("GET", "/api/profiles")["content"]
        self.profiles_file = self._profiles_bytes()

    def _profiles_bytes(self) -> bytes | None:
        path = Path(self.server.services.profiles.profiles_path)
        return path.read_bytes() if path.exists() else None

    def assert_unchanged(self) -> None:
        assert self.server.ok("GET", "/api/projects") == self.projects
        assert self.server.ok("GET", "/api/profiles")["content"] == self.profiles
        assert self._profiles_bytes() == self.profiles_file
        assert not (self.tmp_path / "p").exists()
        assert "pwned" not in self.server.ok("GET", "/api/profiles")["content"]


def ws_handshake(server: LiveServer, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """A WebSocket upgrade with exactly these headers (``Host`` included); returns (status, body)."""
    request = [
        f"GET {path} HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    return status, body


# --- a foreign page: simple requests, preflights, WebSockets --------------------------------------


def test_simple_text_plain_post_from_a_foreign_page_creates_nothing(
    server: LiveServer, tmp_path: Path
) -> None:
    before = Snapshot(server, tmp_path)
    simple = {"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"}
    message = refused(
        server.post("/api/projects", content=json.dumps(project_body(tmp_path)), headers=simple)
    )
    assert "origin" in message and "cors_allowed_origins" in message
    refused(server.put("/api/profiles", content=json.dumps(PAYLOAD_PROFILES), headers=simple))
    # a form post (also "simple"), and the JSON type a page cannot send without a preflight
    form = {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}
    refused(server.put("/api/profiles", content="a=b", headers=form))
    refused(server.put("/api/profiles", json=PAYLOAD_PROFILES, headers={"Origin": EVIL}))
    # sandboxed iframes and file: pages send "Origin: null"
    refused(server.put("/api/profiles", json=PAYLOAD_PROFILES, headers={"Origin": "null"}))
    before.assert_unchanged()


def test_preflighted_put_from_a_foreign_origin_gets_no_allow_headers(
    server: LiveServer, tmp_path: Path
) -> None:
    before = Snapshot(server, tmp_path)
    preflight = server.client.options(
        "/api/profiles",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    refused(preflight)
    # a page that ignores the failed preflight (or a browser bug) still cannot write
    refused(server.put("/api/profiles", json=PAYLOAD_PROFILES, headers={"Origin": EVIL}))
    before.assert_unchanged()


def test_foreign_page_cannot_start_an_attempt(server: LiveServer, tmp_path: Path) -> None:
    project = server.ok("POST", "/api/projects", json=project_body(tmp_path, "mine"))
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "t"})
    attempt = {
        "task_id": task["id"],
        "executor_profile_id": {"executor": "CLAUDE_CODE", "variant": None},
        "base_branch": "main",
    }
    simple = {"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"}
    refused(server.post("/api/task-attempts", content=json.dumps(attempt), headers=simple))
    refused(server.post("/api/task-attempts", json=attempt, headers={"Origin": EVIL}))
    assert server.ok("GET", f"/api/task-attempts?task_id={task['id']}") == []


def test_websocket_from_a_foreign_origin_is_refused_without_a_token(
    server: LiveServer, tmp_path: Path
) -> None:
    project = server.ok("POST", "/api/projects", json=project_body(tmp_path, "mine"))
    url = f"{server.ws_url}/api/tasks/stream/ws?project_id={project['id']}"
    for origin in (EVIL, "null", "http://127.0.0.1", f"http://localhost:{port_of(server)}"):
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=10, additional_headers={"Origin": origin}).close()
        assert info.value.response.status_code == 403, origin
        body = json.loads(info.value.response.body or b"{}")
        assert body["success"] is False and "origin" in body["message"]
    # the UI's own page, and a client that sends no Origin (CLI, tests)
    for headers in ({"Origin": server.base_url}, {}):
        with connect(url, open_timeout=10, additional_headers=headers) as conn:
            assert "JsonPatch" in json.loads(conn.recv(timeout=10))


def test_sse_from_a_foreign_origin_is_refused(server: LiveServer) -> None:
    refused(server.get("/api/events", headers={"Origin": EVIL, "Accept": "text/event-stream"}))
    with server.client.stream("GET", "/api/events", headers={"Origin": server.base_url}) as response:
        assert response.status_code == 200


# --- DNS rebinding: a foreign Host, even from loopback ---------------------------------------------


def test_foreign_host_is_refused_even_from_loopback(server: LiveServer, tmp_path: Path) -> None:
    before = Snapshot(server, tmp_path)
    port = port_of(server)
    rebound = {"Host": f"evil.example:{port}"}
    message = refused(server.get("/api/projects", headers=rebound))
    assert "public_hosts" in message
    refused(server.get("/api/health", headers=rebound))
    refused(server.get("/", headers=rebound))
    # a rebound page is same-origin with itself: Origin matches Host, and the body is proper JSON
    same_site = {**rebound, "Origin": f"http://evil.example:{port}"}
    refused(server.put("/api/profiles", json=PAYLOAD_PROFILES, headers=same_site))
    refused(server.post("/api/projects", json=project_body(tmp_path), headers=same_site))
    for host in ("127.0.0.1.evil.example", "localhost.evil.example", "evil.example@127.0.0.1", ""):
        refused(server.get("/api/projects", headers={"Host": host}))
    status, body = ws_handshake(server, "/api/events", {**same_site})
    assert status == 403
    status, body = ws_handshake(server, "/api/tasks/stream/ws?project_id=x", same_site)
    assert status == 403 and b"public_hosts" in body
    before.assert_unchanged()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "127.0.0.2", "[::1]", "localhost."])
def test_loopback_names_are_served(server: LiveServer, host: str) -> None:
    port = port_of(server)
    response = server.get("/api/health", headers={"Host": f"{host}:{port}"})
    assert response.status_code == 200, response.text
    origin = {"Host": f"{host}:{port}", "Origin": f"http://{host}:{port}"}
    assert server.get("/api/projects", headers=origin).status_code == 200


# --- the content type of state-changing requests --------------------------------------------------


def test_state_changing_bodies_must_be_json(server: LiveServer, tmp_path: Path) -> None:
    before = Snapshot(server, tmp_path)
    body = json.dumps(project_body(tmp_path))
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ):
        message = refused(
            server.post("/api/projects", content=body, headers={"Content-Type": content_type}), 415
        )
        assert "application/json" in message
    # a body without Content-Type (what fetch sends for an untyped Blob) is not JSON either
    request = server.client.build_request("PUT", "/api/profiles", content=json.dumps(PAYLOAD_PROFILES))
    request.headers.pop("Content-Type", None)
    refused(server.client.send(request), 415)
    # a declared non-JSON type with an empty body is refused too, and so is chunked text
    refused(server.post("/api/projects", content=b"", headers={"Content-Type": "text/plain"}), 415)
    chunked = server.client.build_request(
        "PUT", "/api/profiles", content=iter([json.dumps(PAYLOAD_PROFILES).encode()])
    )
    assert chunked.headers.get("Transfer-Encoding") == "chunked"
    refused(server.client.send(chunked), 415)
    before.assert_unchanged()


def test_body_less_posts_and_json_charset_pass(server: LiveServer, tmp_path: Path) -> None:
    # no body, no Content-Type: reaches the route (404 for an attempt that does not exist, not 415)
    response = server.post("/api/task-attempts/00000000-0000-4000-8000-000000000000/stop")
    assert response.status_code != 415, response.text
    assert server.delete("/api/auth/token").status_code == 200
    created = server.post(
        "/api/projects",
        content=json.dumps(project_body(tmp_path, "charset")),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert created.status_code == 200 and created.json()["success"] is True


def test_a_get_with_a_text_body_is_not_state_changing(server: LiveServer) -> None:
    assert (
        server.client.request(
            "GET", "/api/projects", content=b"x", headers={"Content-Type": "text/plain"}
        ).status_code
        == 200
    )


# --- the UI itself: same origin, and behind a reverse proxy ---------------------------------------


def test_the_ui_served_same_origin_keeps_working(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><title>ui</title>")
    config = make_config(tmp_path, server={"frontend_dir": str(dist), "shutdown_timeout_seconds": 1.0})
    with live_server(config) as server:
        page = server.get("/projects", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "<title>ui</title>" in page.text
        # what the UI's fetch() sends from that page
        ui = {"Origin": server.base_url, "Content-Type": "application/json"}
        assert server.put("/api/profiles", content=json.dumps(PAYLOAD_PROFILES), headers=ui).json()["success"]
        project = server.ok("POST", "/api/projects", json=project_body(tmp_path, "ui"), headers=ui)
        assert server.ok("GET", f"/api/projects/{project['id']}", headers={"Origin": server.base_url})
        url = f"{server.ws_url}/api/tasks/stream/ws?project_id={project['id']}"
        with connect(url, open_timeout=10, additional_headers={"Origin": server.base_url}) as conn:
            assert "JsonPatch" in json.loads(conn.recv(timeout=10))


def test_behind_a_reverse_proxy_with_the_public_host(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        server={"public_hosts": ("anyon.example.com", "10.0.0.5:8080"), "shutdown_timeout_seconds": 1.0},
    )
    with live_server(config) as server:
        before = Snapshot(server, tmp_path)
        proxied = {"Host": "anyon.example.com", "Origin": "https://anyon.example.com"}
        project = server.ok("POST", "/api/projects", json=project_body(tmp_path, "proxied"), headers=proxied)
        status, _ = ws_handshake(server, f"/api/tasks/stream/ws?project_id={project['id']}", proxied)
        assert status == 101
        # a load balancer's health check by address, with and without the listed port
        assert server.get("/api/health", headers={"Host": "10.0.0.5:8080"}).status_code == 200
        refused(server.get("/api/health", headers={"Host": "10.0.0.5:9090"}))
        refused(server.get("/api/health", headers={"Host": "10.0.0.5"}))
        # look-alikes of the public host, and its pages on another port or via another host
        for host in ("anyon.example.com.evil.example", "evilanyon.example.com"):
            refused(server.get("/api/projects", headers={"Host": host}))
        refused(
            server.put(
                "/api/profiles",
                json=PAYLOAD_PROFILES,
                headers={**proxied, "Origin": "https://anyon.example.com:444"},
            )
        )
        refused(server.put("/api/profiles", json=PAYLOAD_PROFILES, headers={**proxied, "Origin": EVIL}))
        assert server.ok("GET", "/api/profiles")["content"] == before.profiles
        # loopback keeps working when public hosts are set
        assert server.get("/api/health", headers={"Host": "127.0.0.1"}).status_code == 200


# --- CORS answers only configured origins ---------------------------------------------------------


def test_cors_echoes_listed_origins_only_and_never_star(tmp_path: Path) -> None:
    board = "https://board.example.com"
    config = make_config(tmp_path, server={"cors_allowed_origins": (board,), "shutdown_timeout_seconds": 1.0})
    with live_server(config) as server:
        listed = server.get("/api/projects", headers={"Origin": board})
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == board
        assert listed.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in listed.headers["vary"]
        preflight = server.client.options(
            "/api/profiles",
            headers={
                "Origin": board,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == board
        assert "PUT" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-headers"] == "content-type"
        # the same scheme and host on the default port written out is the same origin
        assert server.get("/api/health", headers={"Origin": board + ":443"}).status_code == 200
        for origin in (
            "http://board.example.com",
            "https://board.example.com:8443",
            "https://evil.example",
            "null",
        ):
            refused(server.get("/api/projects", headers={"Origin": origin}))
        responses = [
            server.get("/api/health"),
            server.get("/api/health", headers={"Origin": server.base_url}),
            listed,
            preflight,
        ]
        assert all(r.headers.get("access-control-allow-origin") != "*" for r in responses)


# --- login: where to go next, and the failed-token limit -------------------------------------------

BAD_NEXT = [
    "//evil.com",
    "/\\evil.com",
    "https://evil.com",
    "javascript:alert(1)",
    "/\r\nSet-Cookie: pwned=1",
    "/a\tb",
    "/\t/evil.com",
    "\\\\evil.com",
    "/caf\u00e9",
    "/a b",
    "/%0d%0aSet-Cookie:x",
    "/%2F%2Fevil.com",
    "/%5Cevil.com",
    "",
]


@pytest.mark.parametrize("target", BAD_NEXT)
def test_bad_next_falls_back_to_the_root(target: str) -> None:
    assert safe_next(target) == "/"


def test_good_next_is_kept() -> None:
    for target in ("/", "/tasks/123", "/projects/p/tasks?view=diffs&x=%2F%2Fa"):
        assert safe_next(target) == target


@pytest.fixture
def token_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    with live_server(reachable_config(tmp_path, shutdown_timeout_seconds=1.0)) as live:
        yield live


def test_login_next_never_redirects_away_or_splits_the_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    # behind a trusted proxy, so that each wrong login below counts against its own client
    config = reachable_config(tmp_path, trusted_proxies=("127.0.0.1",), shutdown_timeout_seconds=1.0)
    with live_server(config) as server:
        _login_next_checks(server)


def _login_next_checks(server: LiveServer) -> None:
    for i, target in enumerate(BAD_NEXT):
        page = server.get("/login", params={"next": target})
        assert page.status_code == 200 and 'name="next" value="/"' in page.text, target
        client = {"X-Forwarded-For": f"192.0.2.{i}"}
        wrong = server.post("/api/auth/token", data={"token": "bad", "next": target}, headers=client)
        assert wrong.status_code == 303
        assert wrong.headers["location"] == "/login?failed=1&next=%2F", target
        assert not any("pwned" in name.lower() for name in wrong.headers)
    # a link carrying an encoded CRLF in its raw query: one header block, no injected cookie
    raw = server.get("/login?next=/%0d%0aSet-Cookie:%20pwned=1")
    assert raw.status_code == 200 and "set-cookie" not in raw.headers
    assert 'name="next" value="/"' in raw.text
    for target in BAD_NEXT:
        right = server.post("/api/auth/token", data={"token": CANARY, "next": target})
        assert right.status_code == 303, right.text
        assert right.headers["location"] == "/", target
        cookies = right.headers.get_list("set-cookie")
        assert len(cookies) == 1 and cookies[0].startswith(f"{SESSION_COOKIE}=")
        server.client.cookies.clear()
    kept = server.post("/api/auth/token", data={"token": CANARY, "next": "/tasks/1?a=b"})
    assert kept.headers["location"] == "/tasks/1?a=b"


def test_spoofed_forwarded_for_does_not_evade_the_limit(token_server: LiveServer) -> None:
    server = token_server
    for i in range(10):
        spoofed = {**bearer(f"guess-{i}"), "X-Forwarded-For": f"198.51.100.{i}"}
        assert server.get("/api/projects", headers=spoofed).status_code == 401
    fresh = {**bearer(), "X-Forwarded-For": "198.51.100.200"}
    assert server.get("/api/projects", headers=fresh).status_code == 429  # still the same peer
    assert server.post("/api/auth/token", json={"token": CANARY}, headers=fresh).status_code == 429


def test_forwarded_for_is_honoured_from_a_trusted_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    config = reachable_config(tmp_path, trusted_proxies=("127.0.0.0/8",), shutdown_timeout_seconds=1.0)
    with live_server(config) as server:
        for i in range(10):
            # the client may prepend anything; the proxy appends the address it saw
            chain = {**bearer(f"guess-{i}"), "X-Forwarded-For": f"10.9.9.{i}, 203.0.113.7"}
            assert server.get("/api/projects", headers=chain).status_code == 401
        limited = {**bearer(), "X-Forwarded-For": "203.0.113.7"}
        assert server.get("/api/projects", headers=limited).status_code == 429
        other = {**bearer(), "X-Forwarded-For": "203.0.113.8"}
        assert (
            server.get("/api/projects", headers=other).status_code == 200
        )  # another client behind the proxy
        assert server.get("/api/projects", headers=bearer()).status_code == 200  # the proxy itself


def test_websocket_without_a_token_gets_the_documented_401(token_server: LiveServer) -> None:
    server = token_server
    project = server.ok(
        "POST",
        "/api/projects",
        json=project_body(Path(server.services.config.paths.base_dir)),
        headers=bearer(),
    )
    url = f"{server.ws_url}/api/tasks/stream/ws?project_id={project['id']}"
    for headers in ({}, {"Origin": server.base_url}, bearer("wrong")):
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=10, additional_headers=headers).close()
        response = info.value.response
        assert response.status_code == 401, headers
        body = json.loads(response.body or b"{}")
        assert set(body) == ENVELOPE_KEYS and "API token" in body["message"]
        assert CANARY.encode() not in (response.body or b"")
    with connect(url, open_timeout=10, additional_headers=bearer()) as conn:
        assert "JsonPatch" in json.loads(conn.recv(timeout=10))


# --- the parsing both sides share ---------------------------------------------------------------


def test_host_and_origin_parsing() -> None:
    assert parse_host_port("LocalHost.:8080") is not None
    for bad in (
        "",
        "a b",
        "evil.example@127.0.0.1",
        "host:",
        "host:0",
        "host:70000",
        "[::1",
        "1.2.3.4/x",
        "-x.example",
    ):
        assert parse_host_port(bad) is None, bad
    hosts = HostAllowList("0.0.0.0", ["anyon.example.com", "[2001:db8::1]:8443"])
    assert hosts.allows(parse_host_port("[::1]:1") or pytest.fail())
    assert hosts.allows(parse_host_port("[2001:db8::1]:8443") or pytest.fail())
    assert not hosts.allows(parse_host_port("[2001:db8::1]") or pytest.fail())
    origin = parse_origin("https://anyon.example.com")
    assert origin is not None
    assert same_origin(origin, parse_host_port("anyon.example.com") or pytest.fail())
    assert not same_origin(origin, parse_host_port("anyon.example.com:8080") or pytest.fail())
    for bad in ("null", "file://", "https://a.example/path", "ftp://a.example", "https://u@a.example"):
        assert parse_origin(bad) is None, bad


def test_trusted_proxies_walk_from_the_right() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "::1"])
    assert proxies.client("192.0.2.1", "1.1.1.1") == "192.0.2.1"  # untrusted peer: header ignored
    assert proxies.client("10.0.0.2", "1.1.1.1, 192.0.2.9") == "192.0.2.9"
    assert proxies.client("10.0.0.2", "192.0.2.9, 10.0.0.3") == "192.0.2.9"  # two proxies
    assert proxies.client("::1", None) == "::1"
    assert TrustedProxies([]).client("127.0.0.1", "1.1.1.1") == "127.0.0.1"
