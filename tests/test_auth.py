"""Token authentication of a reachable server, through a real uvicorn on 127.0.0.1.

The auth decision follows the *configured* host: ``server.host = "0.0.0.0"`` turns it on, while the test
server itself only ever listens on loopback.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from anyon.api.app import create_app
from anyon.config.model import AnyonConfig
from anyon.deployment.factory import build_deployment
from anyon.security.auth import SESSION_COOKIE
from anyon.security.secrets import SecretError
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server

CANARY = "canary-7f3a9c1e-do-not-leak"


def reachable_config(tmp_path: Path, token: str = CANARY, **server: Any) -> AnyonConfig:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    token_file = secrets / "api-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return make_config(
        tmp_path,
        server={"host": "0.0.0.0", "shutdown_timeout_seconds": 1.0, **server},
        auth={"secrets_dir": str(secrets), "credentials_dir": None},
    )


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    with live_server(reachable_config(tmp_path)) as live:
        yield live


def bearer(token: str = CANARY) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None
    assert "API token" in body["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert CANARY not in response.text


def login_cookie(server: LiveServer) -> str:
    response = server.post("/api/auth/token", json={"token": CANARY})
    assert response.status_code == 200, response.text
    value = response.cookies.get(SESSION_COOKIE)
    assert value
    server.client.cookies.clear()
    return value


# --- REST ------------------------------------------------------------------------------------------


def test_health_is_open_everything_else_needs_the_token(server: LiveServer) -> None:
    assert server.get("/api/health").status_code == 200
    for path in ("/api/projects", "/api/info", "/api/config", "/metrics", "/api/tasks?project_id=x"):
        assert_unauthorized(server.get(path))
    assert_unauthorized(server.post("/api/projects", json={"name": "x"}))
    assert_unauthorized(server.get("/api/projects", headers=bearer("wrong-token")))
    assert_unauthorized(server.get("/api/projects", headers={"Authorization": f"Basic {CANARY}"}))
    server.client.cookies.set(SESSION_COOKIE, "v1.99999999999.forged")
    assert_unauthorized(server.get("/api/projects"))
    server.client.cookies.clear()
    ok = server.get("/api/projects", headers=bearer())
    assert ok.status_code == 200 and ok.json()["success"] is True


def test_cors_preflight_of_a_listed_origin_needs_no_token(tmp_path: Path) -> None:
    config = reachable_config(tmp_path, cors_allowed_origins=("https://board.example.com",))
    with live_server(config) as server:
        response = server.client.options(
            "/api/projects",
            headers={"Origin": "https://board.example.com", "Access-Control-Request-Method": "GET"},
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == "https://board.example.com"


def test_login_sets_a_strict_http_only_cookie_that_works_and_logout_clears_it(server: LiveServer) -> None:
    assert server.post("/api/auth/token", json={"token": "nope"}).status_code == 401
    response = server.post("/api/auth/token", json={"token": CANARY})
    assert response.status_code == 200 and response.json()["success"] is True
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
    assert CANARY not in set_cookie
    assert server.get("/api/projects").status_code == 200  # the client kept the cookie
    assert server.delete("/api/auth/token").status_code == 200
    server.client.cookies.clear()
    assert_unauthorized(server.get("/api/projects"))


def test_browser_is_sent_to_the_login_page_whose_form_logs_in(server: LiveServer) -> None:
    page = server.get("/tasks/123", headers={"Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Ftasks%2F123"
    form = server.get("/login?next=/tasks/123")
    assert form.status_code == 200 and 'action="/api/auth/token"' in form.text
    assert 'value="/tasks/123"' in form.text
    wrong = server.post("/api/auth/token", data={"token": "bad", "next": "/tasks/123"})
    assert wrong.status_code == 303 and wrong.headers["location"].startswith("/login?failed=1")
    right = server.post("/api/auth/token", data={"token": CANARY, "next": "//evil.example/x"})
    assert right.status_code == 303 and right.headers["location"] == "/"  # no open redirect
    assert SESSION_COOKIE in right.cookies


def test_failed_attempts_are_rate_limited_per_client(server: LiveServer) -> None:
    statuses = [server.get("/api/projects", headers=bearer(f"guess-{i}")).status_code for i in range(10)]
    assert statuses == [401] * 10
    limited = server.get("/api/projects", headers=bearer())  # even the right token: no oracle
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "too many" in limited.json()["message"]
    assert server.post("/api/auth/token", json={"token": CANARY}).status_code == 429
    assert server.get("/api/health").status_code == 200


# --- SSE and WebSocket -----------------------------------------------------------------------------


def test_sse_needs_the_token_or_cookie(server: LiveServer) -> None:
    assert_unauthorized(server.get("/api/events"))
    server.client.cookies.set(SESSION_COOKIE, login_cookie(server))
    with server.client.stream("GET", "/api/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")


def _ws_refused(url: str, **kw: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        connect(url, open_timeout=10, **kw).close()
    body = info.value.response.body or b""
    assert CANARY.encode() not in body
    return info.value.response.status_code


def test_websocket_checks_token_cookie_and_origin(server: LiveServer) -> None:
    project = server.ok("POST", "/api/projects", json=_project(server), headers=bearer())
    url = f"{server.ws_url}/api/tasks/stream/ws?project_id={project['id']}"
    assert _ws_refused(url) == 401  # the status a REST call without a token gets
    assert _ws_refused(url, additional_headers=bearer("wrong")) == 401
    cookie = login_cookie(server)
    host = server.base_url.removeprefix("http://")
    evil = {"Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": "https://evil.example"}
    assert _ws_refused(url, additional_headers=evil) == 403
    with connect(url, open_timeout=10, additional_headers=bearer()) as conn:
        assert "JsonPatch" in json.loads(conn.recv(timeout=10))
    same_site = {"Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": f"http://{host}"}
    with connect(url, open_timeout=10, additional_headers=same_site) as conn:
        assert "JsonPatch" in json.loads(conn.recv(timeout=10))


def test_websocket_origin_follows_the_allow_list(tmp_path: Path) -> None:
    config = reachable_config(tmp_path, cors_allowed_origins=("https://board.example.com",))
    with live_server(config) as server:
        project = server.ok("POST", "/api/projects", json=_project(server), headers=bearer())
        url = f"{server.ws_url}/api/tasks/stream/ws?project_id={project['id']}"
        unlisted = {"Origin": "https://other.example.com", **bearer()}
        assert _ws_refused(url, additional_headers=unlisted) == 403
        for origin in ("https://board.example.com", server.base_url):  # listed, and the server's own
            with connect(url, open_timeout=10, additional_headers={"Origin": origin, **bearer()}) as conn:
                conn.recv(timeout=10)


def _project(server: LiveServer) -> dict[str, Any]:
    repo_path = Path(server.services.config.paths.base_dir) / "repo"
    return {"name": "p", "git_repo_path": str(repo_path), "use_existing_repo": False}


# --- secrets never leak ----------------------------------------------------------------------------


def test_the_token_never_reaches_logs_or_responses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    caplog.set_level(logging.DEBUG)
    with live_server(reachable_config(tmp_path)) as server:
        bodies = [server.get(p, headers=bearer()).text for p in ("/api/info", "/api/config", "/metrics")]
        bodies.append(server.get("/api/projects", headers=bearer(CANARY + "x")).text)
        bodies.append(server.post("/api/auth/token", json={"token": CANARY}).text)
        bodies.append(server.get("/api/openapi.json", headers=bearer()).text)
    for body in bodies:
        assert CANARY not in body
    assert caplog.records
    for record in caplog.records:
        assert CANARY not in record.getMessage()
        assert CANARY not in json.dumps(record.__dict__, default=str)


# --- start-up --------------------------------------------------------------------------------------


def test_loopback_listener_runs_open(tmp_path: Path) -> None:
    with live_server(make_config(tmp_path)) as server:
        assert server.get("/api/projects").status_code == 200
        assert server.post("/api/auth/token", json={"token": "x"}).json()["data"] == {"auth_required": False}


def test_reachable_without_a_token_refuses_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    config = make_config(
        tmp_path,
        server={"host": "0.0.0.0"},
        auth={"secrets_dir": str(tmp_path / "none"), "credentials_dir": None},
    )
    deployment = build_deployment(config)
    with pytest.raises(SecretError, match="no API token"):
        create_app(deployment)
    monkeypatch.setenv("ANYON_API_TOKEN", CANARY)
    create_app(deployment)  # the last-resort environment variable counts


def test_serve_refuses_a_reachable_host_without_a_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anyon.cli import main

    settings = tmp_path / "settings.toml"
    settings.write_text(f'[paths]\nbase_dir = "{tmp_path}/b"\n[auth]\nsecrets_dir = "{tmp_path}/s"\n')
    env_keys = ("ANYON_API_TOKEN", "ANYON_API_TOKEN_FILE", "CREDENTIALS_DIRECTORY")
    saved = {k: os.environ.pop(k) for k in env_keys if k in os.environ}
    try:
        code = main(["serve", "--settings", str(settings), "--host", "0.0.0.0", "--port", "0"])
    finally:
        os.environ.update(saved)
    assert code == 1
    assert "no auth credential is configured" in capsys.readouterr().err
