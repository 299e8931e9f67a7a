"""Cloud mode: the deployment's agent home reaches every attempt's container read-only, as a private copy.

A login made once (from the browser, into the agent home) must sign in the agents of every attempt, while
an agent can change neither the shared login nor another attempt's copy (THREAT-MODEL: no write access to
shared credentials). Real Docker Engine, the locally built runner image, no network.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pygit2
import pytest

from anyon.services.composition.runners import instance_id
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_cloud import IMAGE, remove_instance_containers, require_test_image
from tests.test_executions_local import start, use_fake_agent, wait_processes

pytestmark = pytest.mark.docker
PROBE = Path(__file__).parent / "agents" / "home_probe.sh"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "agent-home"
    (path / ".claude").mkdir(parents=True)
    (path / ".claude" / ".credentials.json").write_text(json.dumps({"t": "tok42"}))
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
            use_fake_agent(server, "sh ./.probe.sh")
            yield server
    finally:
        remove_instance_containers(instance)


def _project(server: LiveServer, tmp_path: Path, name: str) -> dict[str, object]:
    body = {"name": name, "git_repo_path": str(tmp_path / name), "use_existing_repo": False}
    project = server.ok("POST", "/api/projects", json=body)
    repo = pygit2.Repository(project["git_repo_path"])
    shutil.copy(PROBE, Path(project["git_repo_path"]) / ".probe.sh")
    repo.index.add(".probe.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "add probe", repo.index.write_tree(), [repo.head.target])
    return project  # type: ignore[no-any-return]


def test_agent_home_is_visible_read_only_and_copied_into_each_container(
    cloud: LiveServer, tmp_path: Path, home: Path
) -> None:
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    answers = []
    for name in ("first", "second"):
        project = _project(cloud, tmp_path, name)
        _task, attempt = start(cloud, project, "probe")  # type: ignore[arg-type]
        process = wait_processes(cloud, attempt["id"], 1, timeout=120)[0]
        assert process["status"] == "completed", process
        answers.append("".join(c.content for c in cloud.services.logstore.read(process["id"])))
    for logs in answers:
        # signed in (the login is in HOME), the shared login cannot be changed, the private copy can
        assert "login=ttok42 shared=read-only own=writable" in logs, logs
    # the second attempt got the shared login, not what the first one wrote into its copy
    assert json.loads((home / ".claude" / ".credentials.json").read_text()) == {"t": "tok42"}
    assert not (home / "planted").exists()


@pytest.mark.parametrize(("launcher", "words"), [("installed", "amp is not installed"), ("auto", "npx")])
def test_the_cli_is_looked_up_inside_the_container_not_on_the_host(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, launcher: str, words: str
) -> None:
    require_test_image()
    host_bin = tmp_path / "host-bin"
    host_bin.mkdir()
    (host_bin / "amp").write_text("#!/bin/sh\necho host amp\n")
    (host_bin / "amp").chmod(0o755)
    monkeypatch.setenv("PATH", f"{host_bin}:{os.environ['PATH']}")
    config = make_config(
        tmp_path,
        mode="cloud",
        docker={"image": IMAGE, "user": f"{os.getuid()}:{os.getgid()}", "network": "none"},
        launchers={"amp": launcher},
        agents={"home": str(home)},
    )
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            project = _project(server, tmp_path, "lookup")
            task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "x"})
            body = {"task_id": task["id"], "executor_profile_id": {"executor": "AMP"}, "base_branch": "main"}
            attempt = server.ok("POST", "/api/task-attempts", json=body)
            process = wait_processes(server, attempt["id"], 1, timeout=120)[0]
            assert process["status"] == "failed", process
            logs = "".join(c.content for c in server.services.logstore.read(process["id"]))
            assert words in logs and "host amp" not in logs, logs
    finally:
        remove_instance_containers(instance)


def test_a_login_made_after_the_container_was_created_reaches_its_next_agent(tmp_path: Path) -> None:
    require_test_image()
    home = tmp_path / "late-home"  # no login yet
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
            use_fake_agent(server, "sh ./.probe.sh")
            project = _project(server, tmp_path, "late")
            _task, attempt = start(server, project, "probe")  # type: ignore[arg-type]

            def containers() -> list[str]:
                label = f"anyon.attempt={attempt['id']}"
                return [c.id for c in docker.from_env().containers.list(filters={"label": label})]

            def run_logs(count: int) -> str:
                process = wait_processes(server, attempt["id"], count, timeout=120)[count - 1]
                assert process["status"] == "completed", process
                return "".join(c.content for c in server.services.logstore.read(process["id"]))

            def follow_up(count: int) -> str:
                deadline = time.monotonic() + 30
                while (
                    sent := server.post(
                        f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "again"}
                    )
                ).status_code == 409:
                    assert time.monotonic() < deadline, sent.text
                    time.sleep(0.1)
                assert sent.json()["success"] is True, sent.text
                return run_logs(count)

            assert "login= " in run_logs(1)  # not signed in: the container's HOME has no login
            before = containers()
            assert len(before) == 1
            # the login from the browser writes into the agent home (as the CLI in the login terminal does)
            (home / ".claude").mkdir(parents=True, exist_ok=True)
            (home / ".claude" / ".credentials.json").write_text(json.dumps({"t": "late7"}))
            assert "login=tlate7 shared=read-only own=writable" in follow_up(2)
            # the same container, not a new one; and with the agent home unchanged nothing is copied again:
            # what the agent wrote into its own copy stays
            assert containers() == before
            assert "login=changed" in follow_up(3)
            assert json.loads((home / ".claude" / ".credentials.json").read_text()) == {"t": "late7"}
    finally:
        remove_instance_containers(instance)
