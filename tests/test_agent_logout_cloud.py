"""A logout reaches the running containers: the login leaves their HOME at once, and nothing else does.

A user who signs an agent out in the web UI expects no container of theirs to keep using that login. Each
container's HOME is a private copy of the agent home; the copy keeps a manifest of what it brought, so the
logout removes the login from every running container that copied that home (not only before its next
process), leaves what the agent wrote itself, follows no link the agent planted in its HOME (THREAT-MODEL
rule 3), and touches no container of another account. Real uvicorn, real Docker Engine, the locally built
runner image, no network.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pygit2
import pytest

from anyon.config.model import DockerSettings
from anyon.services.composition.runners import instance_id
from anyon.services.runners.agent_home_sync import MANIFEST_FILE, AgentHomeSync
from anyon.services.runners.container_spec import CONTAINER_AGENT_HOME, CONTAINER_HOME
from anyon.services.runners.engine_client import EngineClient
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_accounts import _settings_file, add_user, as_user
from tests.test_accounts_agent_homes import _login, _team_config, _users_root
from tests.test_executions_cloud import IMAGE, SHELL_AGENT, remove_instance_containers, require_test_image
from tests.test_executions_local import start, use_fake_agent, wait_processes

pytestmark = pytest.mark.docker

#: How long after the logout's answer the login may still be in a container's HOME.
REACH_SECONDS = 3.0

#: Writes a file of its own into HOME, then ends (its container keeps running).
OWN_FILE_AGENT = """#!/bin/sh
cat > /dev/null
echo "the agent's own" > "$HOME/own.txt"
echo '{"type":"result","subtype":"success","is_error":false,"result":"wrote"}'
"""

#: Replaces paths the copy brought (and the stamp of the copy) by links to files it can write outside HOME
#: (in its worktree), and adds paths outside HOME to the manifest, hoping the next copy removes or
#: overwrites them.
PLANTING_AGENT = """#!/bin/sh
cat > /dev/null
mkdir -p victim-dir
for f in victim-dir/.credentials.json victim-account.json victim-extra.txt victim-listed.txt \\
  victim-stamp.txt; do
  echo untouched > "$f"
done
rm -rf "$HOME/.claude" && ln -s "$PWD/victim-dir" "$HOME/.claude"
rm -f "$HOME/.claude.json" && ln -s "$PWD/victim-account.json" "$HOME/.claude.json"
rm -f "$HOME/extra.txt" && ln -s "$PWD/victim-extra.txt" "$HOME/extra.txt"
rm -f "$HOME/.anyon-agent-home-stamp" && ln -s "$PWD/victim-stamp.txt" "$HOME/.anyon-agent-home-stamp"
listed=$PWD/victim-listed.txt
printf '%s\\n' "../..$listed" "$listed" "extra.txt/../../..$listed" >> "$HOME/.anyon-agent-home-manifest"
echo '{"type":"result","subtype":"success","is_error":false,"result":"planted"}'
"""


def _signed_in(home: Path, token: str = "tok42") -> None:
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / ".credentials.json").write_text(json.dumps({"claudeAiOauth": {"accessToken": token}}))
    (home / ".claude.json").write_text(
        json.dumps({"oauthAccount": {"email": "a@example.com"}, "theme": "dark"})
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "agent-home"
    _signed_in(path)
    return path


@pytest.fixture
def cloud(tmp_path: Path, home: Path) -> Iterator[LiveServer]:
    require_test_image()
    config = make_config(
        tmp_path,
        mode="cloud",
        docker={"image": IMAGE, "user": f"{os.getuid()}:{os.getgid()}", "network": "none"},
        executions={"stop_escalation_seconds": 0.5},
        agents={"home": str(home)},
    )
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            use_fake_agent(server, SHELL_AGENT)
            yield server
    finally:
        remove_instance_containers(instance)


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """A cloud server with accounts, each signing its agents in its own agent home."""
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


def _project(server: LiveServer, path: Path, agent: str) -> dict[str, Any]:
    """A project whose agent is the shell script ``agent``."""
    body = {"name": path.name, "git_repo_path": str(path), "use_existing_repo": False}
    project: dict[str, Any] = server.ok("POST", "/api/projects", json=body)
    repo = pygit2.Repository(project["git_repo_path"])
    (path / ".agent.sh").write_text(agent)
    repo.index.add(".agent.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "agent", repo.index.write_tree(), [repo.head.target])
    return project


def _run(server: LiveServer, project: dict[str, Any]) -> tuple[str, Path]:
    """Run the project's agent in a new attempt; (its container's id, its worktree)."""
    _, attempt = start(server, project, "run the agent")
    process = wait_processes(server, attempt["id"], 1, timeout=120)[0]
    assert process["status"] == "completed", process
    worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    (container,) = docker.from_env().containers.list(filters={"label": f"anyon.attempt={attempt['id']}"})
    return str(container.id), worktree


def _in_home(container_id: str, script: str) -> str:
    """What ``script`` prints, run in the container's HOME as its user (the container keeps running)."""
    result = docker.from_env().containers.get(container_id).exec_run(["sh", "-c", f'cd "$HOME" && {script}'])
    return str(result.output.decode())


def _has_login(container_id: str) -> bool:
    return "tok" in _in_home(container_id, "cat .claude/.credentials.json 2>/dev/null; echo")


def _within(seconds: float, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_logout_removes_the_login_from_a_running_container_and_keeps_the_agents_files(
    cloud: LiveServer, tmp_path: Path, home: Path
) -> None:
    container, _ = _run(cloud, _project(cloud, tmp_path / "own", OWN_FILE_AGENT))
    assert _has_login(container)
    assert "the agent's own" in _in_home(container, "cat own.txt")

    assert cloud.ok("POST", "/api/auth/claude/logout") is None
    assert not (home / ".claude" / ".credentials.json").exists()
    _within(REACH_SECONDS, lambda: not _has_login(container), "the login is still in the container's HOME")
    # the account left the copy of the settings file too; what the agent wrote itself stays
    assert json.loads(_in_home(container, "cat .claude.json")) == {"theme": "dark"}
    assert "the agent's own" in _in_home(container, "cat own.txt")

    # a login made again reaches the same container's next process, and a second logout removes it again
    _signed_in(home, "tok-again")
    _follow_up(cloud, _attempt_of(container))
    _within(60, lambda: "tok-again" in _in_home(container, "cat .claude/.credentials.json"), "no new login")
    assert cloud.ok("POST", "/api/auth/claude/logout") is None
    _within(REACH_SECONDS, lambda: not _has_login(container), "the second logout did not reach the container")
    assert "the agent's own" in _in_home(container, "cat own.txt")


def _attempt_of(container_id: str) -> str:
    return str(docker.from_env().containers.get(container_id).labels["anyon.attempt"])


def _follow_up(server: LiveServer, attempt_id: str) -> None:
    deadline = time.monotonic() + 30
    while (
        sent := server.post(f"/api/task-attempts/{attempt_id}/follow-up", json={"prompt": "again"})
    ).status_code == 409:  # the attempt is still finishing its first run
        assert time.monotonic() < deadline, sent.text
        time.sleep(0.1)
    assert sent.json()["success"] is True, sent.text


def test_links_the_agent_planted_in_its_home_are_not_followed(
    cloud: LiveServer, tmp_path: Path, home: Path
) -> None:
    (home / "extra.txt").write_text("a file of the agent home\n")
    container, worktree = _run(cloud, _project(cloud, tmp_path / "planted", PLANTING_AGENT))
    assert (home / "extra.txt").read_text() == "a file of the agent home\n"  # the shared home is unchanged
    victims = ["victim-dir/.credentials.json", "victim-account.json", "victim-extra.txt", "victim-listed.txt"]
    victims.append("victim-stamp.txt")
    assert all((worktree / v).read_text() == "untouched\n" for v in victims)

    stamp = _in_home(container, "cat .anyon-agent-home-stamp")
    (home / "extra.txt").unlink()  # gone from the agent home: the next copy removes it from HOME
    assert cloud.ok("POST", "/api/auth/claude/logout") is None

    def copied_again() -> bool:
        return _in_home(container, "cat .anyon-agent-home-stamp") not in ("", stamp)

    _within(REACH_SECONDS, copied_again, "the logout did not reach the container")
    # what the links pointed to is untouched: nothing removed, nothing written through them
    for victim in victims:
        assert (worktree / victim).read_text() == "untouched\n", victim
    # the links themselves were removed (extra.txt, the credentials) or replaced by the copy's files
    names = ".claude .claude.json extra.txt .anyon-agent-home-stamp"
    listing = _in_home(container, f"for p in {names}; do [ -L $p ] && echo link:$p; done")
    assert "link:" not in listing, listing
    assert json.loads(_in_home(container, "cat .claude.json")) == {"theme": "dark"}
    assert not _has_login(container)
    assert "extra.txt" not in _in_home(container, "ls -A")


def test_one_accounts_logout_leaves_another_accounts_containers_signed_in(
    team: LiveServer, tmp_path: Path
) -> None:
    a_token, _ = add_user(team, "alice")
    b_token, _ = add_user(team, "bob")
    alice, bob = as_user(team, a_token), as_user(team, b_token)
    _login(team, a_token, "alice-login-code")
    _login(team, b_token, "bob-login-code-2")
    use_fake_agent(alice, SHELL_AGENT)
    a_container, _ = _run(alice, _project(alice, tmp_path / "alice-proj", OWN_FILE_AGENT))
    b_container, _ = _run(bob, _project(bob, tmp_path / "bob-proj", OWN_FILE_AGENT))
    assert _has_login(a_container) and _has_login(b_container)
    b_stamp = _in_home(b_container, "cat .anyon-agent-home-stamp")

    assert alice.ok("POST", "/api/auth/claude/logout") is None
    _within(REACH_SECONDS, lambda: not _has_login(a_container), "alice's container kept her login")
    # bob's container was not copied into again: his login and his copy's stamp are as they were
    assert _has_login(b_container)
    assert _in_home(b_container, "cat .anyon-agent-home-stamp") == b_stamp
    homes = list(_users_root(team).iterdir())
    assert sum((h / ".claude" / ".credentials.json").exists() for h in homes) == 1  # bob's only


def test_the_copy_mirrors_removals_of_odd_names_as_an_unprivileged_user(tmp_path: Path) -> None:
    """The copy itself, in a bare hardened container run by an unprivileged uid: names with spaces are
    copied, listed and removed again; a name with a newline is never listed (so never misread as two
    paths); the agent's own files stay; another home's refresh leaves the container alone."""
    require_test_image()
    uid, gid = (1000, 1000) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    home = tmp_path / "agent-home"
    _signed_in(home)
    (home / "with space").mkdir()
    (home / "with space" / "a b.json").write_text("{}")
    (home / "odd\nname.txt").write_text("odd\n")
    client = docker.from_env()
    container = client.containers.run(
        IMAGE,
        ["sleep", "600"],
        detach=True,
        user=f"{uid}:{gid}",
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        environment={"HOME": CONTAINER_HOME},
        tmpfs={CONTAINER_HOME: f"rw,nosuid,nodev,uid={uid},gid={gid},mode=0700"},
        volumes={str(home): {"bind": CONTAINER_AGENT_HOME, "mode": "ro"}},
        labels={"anyon.instance": "test-logout-copy"},
    )
    cid = str(container.id)

    async def scenario() -> None:
        engine = EngineClient(DockerSettings(image=IMAGE, network="none"))
        sync = AgentHomeSync(engine, uid, gid)  # a root server hands the home to the container user
        try:
            await sync.copy(cid, str(home))
            manifest = _in_home(cid, f"cat {MANIFEST_FILE}").splitlines()
            wanted = {".claude/.credentials.json", ".claude.json", "with space/a b.json"}
            assert wanted <= set(manifest), manifest
            assert not any("odd" in line or "name.txt" in line for line in manifest), manifest
            assert _in_home(cid, 'cat "with space/a b.json"') == "{}"
            _in_home(cid, 'echo mine > own.txt && echo mine > "with space/mine.txt"')

            (home / "with space" / "a b.json").unlink()
            (home / ".claude" / ".credentials.json").unlink()
            assert await sync.refresh(str(tmp_path / "another-home")) == []
            assert _has_login(cid)  # not its home: untouched
            assert await sync.refresh(str(home)) == [cid]
            assert not _has_login(cid)
            listing = _in_home(cid, 'ls -A . "with space"')
            assert "a b.json" not in listing and "own.txt" in listing and "mine.txt" in listing, listing
            assert _in_home(cid, "cat odd*name.txt") == "odd\n"  # in no manifest: left as it is
        finally:
            await engine.close()

    try:
        asyncio.run(scenario())
    finally:
        container.remove(force=True)
