"""GitHub sign-in, token check, repository list and the client's failure modes, against a stand-in
GitHub on 127.0.0.1 (tests/github/standin.py) and a real anyon server."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anyon.services.github.client import GitHubClient, GitHubError
from tests.conftest import make_config
from tests.github.standin import TOKEN, StandIn, github_standin
from tests.live_server import LiveServer, live_server


def github_settings(standin: StandIn, **extra: Any) -> dict[str, Any]:
    return {
        "api_url": standin.url,
        "web_url": standin.url,
        "client_id": "standin-client",
        "timeout_seconds": 2.0,
        "pr_monitor_interval_seconds": 0.0,
        **extra,
    }


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with github_standin() as gh:
        yield gh


@pytest.fixture
def server(tmp_path: Path, standin: StandIn) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path, github=github_settings(standin))) as live:
        yield live


def soft(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is False, body
    return body  # type: ignore[no-any-return]


def test_device_flow_signs_in_and_keeps_the_token_out_of_every_answer(
    server: LiveServer, standin: StandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert server.ok("GET", "/api/auth/github/check") == "INVALID"
    assert "No GitHub sign-in is in progress" in soft(server.post("/api/auth/github/device/poll"))["message"]
    started = server.ok("POST", "/api/auth/github/device/start")
    assert started == {
        "user_code": "ABCD-1234",
        "verification_uri": f"{standin.url}/login/device",
        "expires_in": 900,
        "interval": 5,
    }
    standin.state.device_answers = [{"error": "authorization_pending"}, {"error": "slow_down"}]
    assert server.ok("POST", "/api/auth/github/device/poll") == "AUTHORIZATION_PENDING"
    assert server.ok("POST", "/api/auth/github/device/poll") == "SLOW_DOWN"
    assert server.ok("POST", "/api/auth/github/device/poll") == "SUCCESS"
    info = server.ok("GET", "/api/info")
    assert info["config"]["github"]["username"] == "octo"
    assert info["config"]["github"]["primary_email"] == "octo@example.com"
    assert info["config"]["github"]["oauth_token"] is None and info["config"]["github_login_acknowledged"]
    assert info["github_secret_state"]["has_oauth_token"] is True
    assert server.ok("GET", "/api/auth/github/check") == "VALID"
    # the token is kept in a 0600 file, not in config.json or the database
    data_dir = Path(server.services.config.paths.data_dir)
    secrets = data_dir / "secrets.json"
    assert TOKEN in secrets.read_text() and secrets.stat().st_mode & 0o777 == 0o600
    assert TOKEN not in (data_dir / "config.json").read_text()
    assert TOKEN.encode() not in Path(server.services.config.database.file).read_bytes()
    assert TOKEN not in caplog.text
    # the device code was only ever sent to the stand-in's OAuth endpoint, never back to the browser
    assert "dev-code-1" not in str(started)

    # revoked on GitHub: the check says so
    standin.state.token = "another-token"
    assert server.ok("GET", "/api/auth/github/check") == "INVALID"


def test_device_flow_failures_are_clear_soft_errors(server: LiveServer, standin: StandIn) -> None:
    server.ok("POST", "/api/auth/github/device/start")
    standin.state.device_answers = [{"error": "access_denied"}]
    assert "access was denied" in soft(server.post("/api/auth/github/device/poll"))["message"]
    # the flow is over: polling again needs a new start
    assert "start it again" in soft(server.post("/api/auth/github/device/poll"))["message"]
    standin.state.delay = 3.0  # beyond github.timeout_seconds
    message = soft(server.post("/api/auth/github/device/start"))["message"]
    assert "did not answer in time" in message


def test_sign_in_without_a_client_id_says_what_to_configure(tmp_path: Path) -> None:
    with live_server(make_config(tmp_path)) as live:
        message = soft(live.post("/api/auth/github/device/start"))["message"]
        assert "github.client_id" in message and "GITHUB_CLIENT_ID" in message


def test_a_personal_token_from_the_ui_is_checked_against_github(server: LiveServer, standin: StandIn) -> None:
    config = server.ok("GET", "/api/info")["config"]
    config["github"]["pat"] = "wrong-token"
    saved = server.ok("PUT", "/api/config", json=config)
    assert saved["github"]["pat"] is None
    assert server.ok("GET", "/api/auth/github/check") == "INVALID"
    config["github"]["pat"] = TOKEN
    server.ok("PUT", "/api/config", json=config)
    assert server.ok("GET", "/api/auth/github/check") == "VALID"
    standin.state.fail_status = 502
    assert "Could not check" in soft(server.get("/api/auth/github/check"))["message"]


def test_an_ops_token_from_the_secrets_dir_wins(tmp_path: Path, standin: StandIn) -> None:
    secrets = tmp_path / "ops-secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "github-token").write_text(TOKEN + "\n")
    (secrets / "github-token").chmod(0o600)
    config = make_config(tmp_path, github=github_settings(standin), auth={"secrets_dir": str(secrets)})
    with live_server(config) as live:
        assert live.ok("GET", "/api/auth/github/check") == "VALID"
        assert live.ok("GET", "/api/info")["github_secret_state"]["has_oauth_token"] is False


def test_repositories_are_listed_page_by_page(server: LiveServer, standin: StandIn) -> None:
    assert "Not signed in" in soft(server.get("/api/github/repositories"))["message"]
    standin.state.repos = [
        {
            "id": n,
            "name": f"r{n}",
            "full_name": f"octo/r{n}",
            "owner": {"login": "octo"},
            "description": None if n % 2 else f"repo {n}",
            "clone_url": f"https://github.example/octo/r{n}.git",
            "ssh_url": f"git@github.example:octo/r{n}.git",
            "default_branch": "main",
            "private": n % 3 == 0,
        }
        for n in range(1, 151)
    ]
    config = server.ok("GET", "/api/info")["config"]
    config["github"]["pat"] = TOKEN
    server.ok("PUT", "/api/config", json=config)
    first = server.ok("GET", "/api/github/repositories?page=1")
    second = server.ok("GET", "/api/github/repositories?page=2")
    third = server.ok("GET", "/api/github/repositories?page=3")
    assert [len(first), len(second), third] == [100, 50, []]
    assert first[0] == {
        "id": 1,
        "name": "r1",
        "full_name": "octo/r1",
        "owner": "octo",
        "description": None,
        "clone_url": "https://github.example/octo/r1.git",
        "ssh_url": "git@github.example:octo/r1.git",
        "default_branch": "main",
        "private": False,
    }
    assert second[-1]["id"] == 150
    assert server.get("/api/github/repositories?page=abc").status_code == 400
    assert "page must be" in soft(server.get("/api/github/repositories?page=0"))["message"]
    standin.state.token = "rotated"
    assert "expired or revoked" in soft(server.get("/api/github/repositories"))["message"]


def test_client_errors_are_typed(standin: StandIn) -> None:
    client = GitHubClient(standin.url, standin.url, timeout=1.0)
    try:
        assert client.user(TOKEN)["login"] == "octo"
        with pytest.raises(GitHubError) as err:
            client.user("bad")
        assert err.value.kind == "unauthorized" and err.value.status == 401 and "bad" not in err.value.message
        with pytest.raises(GitHubError) as err:
            client.pulls_for_branch(TOKEN, "octo", "missing", "b")
        assert err.value.kind == "not_found"
        client.create_pull(TOKEN, "octo", "widget", "t", None, "feature", "main")
        with pytest.raises(GitHubError) as err:
            client.create_pull(TOKEN, "octo", "widget", "t", None, "feature", "main")
        assert err.value.kind == "unprocessable" and "already exists" in err.value.message
        with pytest.raises(GitHubError) as err:
            client.pull(TOKEN, "octo", "renamed", 1)
        assert err.value.status == 301 and "not followed" in err.value.message
        assert not [r for r in standin.state.requests if "evil" in r.path]
        standin.state.rate_limited = "429"
        with pytest.raises(GitHubError) as err:
            client.user(TOKEN)
        assert err.value.kind == "rate_limited" and err.value.retry_after == 7.0
        standin.state.rate_limited = "403"
        with pytest.raises(GitHubError) as err:
            client.user(TOKEN)
        assert err.value.kind == "rate_limited" and 25 <= err.value.retry_after <= 31
        standin.state.rate_limited = None
        standin.state.delay = 2.0
        with pytest.raises(GitHubError) as err:
            client.user(TOKEN)
        assert err.value.kind == "unreachable" and "in time" in err.value.message
        standin.state.delay = 0
        assert all(TOKEN not in r.path for r in standin.state.requests)
    finally:
        client.close()


def test_config_show_never_prints_a_github_token(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ANYON_GITHUB_TOKEN": TOKEN,
        "ANYON_BASE_DIR": str(tmp_path / "base"),
        "ANYON_TEMP_DIR": str(tmp_path / "tmp"),
        "GITHUB_CLIENT_ID": "client-123",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "anyon", "config", "show", "--origin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "client-123" in out.stdout and "[github]" in out.stdout and "api_url" in out.stdout
    assert TOKEN not in out.stdout + out.stderr


def test_a_token_that_cannot_be_a_header_is_refused_cleanly(server: LiveServer, standin: StandIn) -> None:
    config = server.ok("GET", "/api/info")["config"]
    config["github"]["pat"] = "tok\u008ben with spaces"
    server.ok("PUT", "/api/config", json=config)
    assert server.ok("GET", "/api/auth/github/check") == "INVALID"
    assert "no GitHub token has" in soft(server.get("/api/github/repositories"))["message"]
    assert not standin.state.requests
