"""Per-account agent credentials on a cloud server with accounts, through a real uvicorn and real dockerd.

Alice signs her agents in from the browser's login terminal: the login lands in her own agent home,
not in the shared one nor in bob's. Her attempt's container gets her home (mounted read-only and copied
into its HOME); bob's attempt's container gets his, and nothing of hers is in it, neither in HOME nor at
the mount point. Login sessions, logout and the MCP config belong to the acting account the same way,
and the server's API token keeps the shared home.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest
from websockets.sync.client import connect

from anyon.config.model import AnyonConfig
from anyon.services.composition.runners import instance_id
from tests.live_server import LiveServer, live_server
from tests.test_accounts import _config, _settings_file, add_user, as_user, cli
from tests.test_agent_login import FAKE_LOGIN, read_until, session_id
from tests.test_auth import CANARY, bearer
from tests.test_executions_cloud import (
    SHELL_AGENT,
    _project_with_agent,
    remove_instance_containers,
    require_test_image,
)
from tests.test_executions_local import start, use_fake_agent, wait_processes

pytestmark = pytest.mark.docker

#: lists its HOME and the mounted agent home into the worktree, then reports success
LISTING_AGENT = """#!/bin/sh
cat > /dev/null
{ ls -A "$HOME"; echo ---; ls -A /opt/anyon/agent-home 2>&1; } > listing.txt
echo '{"type":"result","subtype":"success","is_error":false,"result":"listed"}'
"""


def _team_config(tmp_path: Path) -> AnyonConfig:
    config = _config(tmp_path, "private")
    agents = dataclasses.replace(
        config.agents,
        home=str(tmp_path / "agent-home"),
        claude_login_command=f"{sys.executable} {FAKE_LOGIN}",
    )
    return dataclasses.replace(config, agents=agents)


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    require_test_image()
    config = _team_config(tmp_path)
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            server.settings = _settings_file(config, tmp_path)  # type: ignore[attr-defined]
            server.services.agent_login.check_seconds = 0.2
            yield server
    finally:
        remove_instance_containers(instance)


def _users_root(server: LiveServer) -> Path:
    return Path(str(server.services.config.agents.home) + ".users")


def _login(server: LiveServer, token: str, code: str) -> str:
    """Sign in through the browser's login terminal as the token's account; returns the session id."""
    url = server.ws_url + "/api/auth/claude/pty"
    with connect(url, open_timeout=10, additional_headers=bearer(token)) as conn:
        sid = session_id(conn)
        read_until(conn, "Paste code here:")
        conn.send(code + "\r")
        read_until(conn, "Signed in")
    return sid


def _listing(server: LiveServer, tmp_path: Path) -> dict[str, Any]:
    """A project whose agent lists what its container's HOME and agent-home mount hold."""
    project = _project_with_agent(server, tmp_path)
    repo_path = Path(project["git_repo_path"])
    (repo_path / ".agent.sh").write_text(LISTING_AGENT)
    repo = pygit2.Repository(str(repo_path))
    repo.index.add(".agent.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "listing agent", repo.index.write_tree(), [repo.head.target])
    return project


def _run_listing(who: LiveServer, project: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(names in the container's HOME, names at the agent-home mount) of a fresh attempt."""
    _, attempt = start(who, project, "List the homes", "list")
    processes = wait_processes(who, attempt["id"], 3, timeout=120)
    assert [p["status"] for p in processes] == ["completed"] * 3, processes
    worktree = Path(who.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    home, _, mount = (worktree / "listing.txt").read_text().partition("---\n")
    return set(home.split()), set(mount.split())


def test_a_login_lands_in_the_accounts_own_home_and_only_its_containers_get_it(
    team: LiveServer, tmp_path: Path
) -> None:
    a_token, _ = add_user(team, "alice")
    b_token, _ = add_user(team, "bob")
    alice, bob, admin = as_user(team, a_token), as_user(team, b_token), as_user(team, CANARY)
    shared = Path(team.services.config.agents.home)
    users = _users_root(team)

    sid = _login(team, a_token, "alice-login-code")
    homes = [p for p in users.iterdir()] if users.is_dir() else []
    assert len(homes) == 1, homes  # only alice's home exists: bob has not signed in nor run anything
    alice_home = homes[0]
    credentials = alice_home / ".claude" / ".credentials.json"
    assert json.loads(credentials.read_text())["claudeAiOauth"]["accessToken"] == "token-from-16-chars"
    assert stat.S_IMODE(alice_home.stat().st_mode) == 0o700
    assert stat.S_IMODE(users.stat().st_mode) == 0o700
    assert not (shared / ".claude" / ".credentials.json").exists()  # not the shared home's
    # her login session is hers: bob and the admin find no such session
    assert alice.ok("GET", f"/api/auth/claude/pty/session/{sid}/log")["session_id"] == sid
    for other in (bob, admin):
        response = other.client.request("GET", f"/api/auth/claude/pty/session/{sid}/log")
        assert response.status_code == 404, response.text
        assert other.client.request("POST", f"/api/auth/claude/session/{sid}/cancel").status_code == 404
    # bob's logout is his own: alice stays signed in
    assert bob.ok("POST", "/api/auth/claude/logout") is None
    assert credentials.exists()

    (alice_home / "alice-only.txt").write_text("alice's\n")
    shared.mkdir(exist_ok=True)
    (shared / "shared-only.txt").write_text("the shared home's\n")

    use_fake_agent(alice, SHELL_AGENT)
    a_home, a_mount = _run_listing(alice, _listing(alice, tmp_path / "a"))
    assert {"alice-only.txt", ".claude"} <= a_home and {"alice-only.txt", ".claude"} <= a_mount
    assert "shared-only.txt" not in a_home | a_mount  # the admin's login is not hers

    b_home, b_mount = _run_listing(bob, _listing(bob, tmp_path / "b"))
    assert "alice-only.txt" not in b_home | b_mount, (b_home, b_mount)
    assert ".claude" not in b_home | b_mount
    assert "shared-only.txt" not in b_home | b_mount
    assert len(list(users.iterdir())) == 2  # bob's attempt made his (empty) home

    # the server's API token keeps the shared home
    s_home, s_mount = _run_listing(admin, _listing(admin, tmp_path / "s"))
    assert "shared-only.txt" in s_home and "shared-only.txt" in s_mount
    assert "alice-only.txt" not in s_home | s_mount


def test_logout_acts_on_the_acting_accounts_home(team: LiveServer) -> None:
    a_token, _ = add_user(team, "alice")
    alice = as_user(team, a_token)
    _login(team, a_token, "alice-login-code")
    (alice_home,) = _users_root(team).iterdir()
    shared = Path(team.services.config.agents.home)
    (shared / ".claude").mkdir(parents=True, exist_ok=True)
    (shared / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "x"}}')
    assert alice.ok("POST", "/api/auth/claude/logout") is None
    assert not (alice_home / ".claude" / ".credentials.json").exists()
    assert (shared / ".claude" / ".credentials.json").exists()  # the admin's login is untouched
    code, out, err = cli(team, "audit", "--action", "agent.logout", "--json")
    assert code == 0, err
    assert [(e["user"], e["outcome"]) for e in map(json.loads, out.splitlines())] == [("alice", "ok")]


def test_mcp_config_is_per_account(team: LiveServer) -> None:
    a_token, _ = add_user(team, "alice")
    b_token, _ = add_user(team, "bob")
    alice, bob, admin = as_user(team, a_token), as_user(team, b_token), as_user(team, CANARY)
    servers = {"alice-tools": {"command": "npx", "args": ["alice-mcp"]}}
    params = {"executor": "CLAUDE_CODE"}
    alice.ok("POST", "/api/mcp-config", params=params, json={"servers": servers})
    assert alice.ok("GET", "/api/mcp-config", params=params)["mcp_config"]["servers"] == servers
    for other in (bob, admin):
        assert "alice-tools" not in other.ok("GET", "/api/mcp-config", params=params)["mcp_config"]["servers"]
    bob.ok("POST", "/api/mcp-config", params=params, json={"servers": {}})
    assert alice.ok("GET", "/api/mcp-config", params=params)["mcp_config"]["servers"] == servers
    written = [p for p in _users_root(team).glob("*/.claude.json") if "alice-tools" in p.read_text()]
    assert len(written) == 1
    shared = Path(team.services.config.agents.home) / ".claude.json"
    assert not shared.exists() or "alice-tools" not in shared.read_text()
    assert os.stat(written[0].parent).st_mode & 0o077 == 0


def test_a_warm_container_is_made_again_with_the_accounts_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm container is created before any account owns its attempt, with the shared home: the
    account that claims it must get its own home, never the shared one."""
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    require_test_image()
    config = _team_config(tmp_path)
    config = dataclasses.replace(
        config,
        docker=dataclasses.replace(config.docker, warm_pool_size=1, warm_pool_idle_seconds=300.0),
    )
    instance = instance_id(config)
    try:
        with live_server(config) as team:
            team.settings = _settings_file(config, tmp_path)  # type: ignore[attr-defined]
            team.services.agent_login.check_seconds = 0.2
            a_token, _ = add_user(team, "alice")
            alice = as_user(team, a_token)
            _login(team, a_token, "alice-login-code")
            (alice_home,) = _users_root(team).iterdir()
            (alice_home / "alice-only.txt").write_text("alice's\n")
            shared = Path(config.agents.home)
            shared.mkdir(exist_ok=True)
            (shared / "shared-only.txt").write_text("the shared home's\n")
            use_fake_agent(alice, SHELL_AGENT)
            project = _listing(alice, tmp_path / "a")
            _run_listing(alice, project)
            pool = team.services.executions.warm_pool
            deadline = time.monotonic() + 30
            while not pool.slots():
                assert time.monotonic() < deadline, "no warm container"
                time.sleep(0.05)
            warm_id = str(pool.slots()[0].attempt_id)
            _, attempt = start(alice, project, "Warm one", "list")
            assert attempt["id"] == warm_id  # it did take the warm slot
            wait_processes(alice, attempt["id"], 3, timeout=120)
            worktree = Path(alice.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
            home, _, mount = (worktree / "listing.txt").read_text().partition("---\n")
            assert "alice-only.txt" in home.split() and "alice-only.txt" in mount.split()
            assert "shared-only.txt" not in set(home.split()) | set(mount.split())
    finally:
        remove_instance_containers(instance)
