"""Cloud mode end to end through the HTTP API: the agent and the scripts run inside the attempt's
hardened container (real Docker Engine, locally built image, no network), and the commit lands on the
attempt branch on the host (path identity)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from anyon.services.composition.runners import instance_id
from tests.conftest import IN_CI, make_config, require_docker
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import branch_files, start, use_fake_agent, wait_processes, wait_task_status

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("ANYON_TEST_IMAGE", "anyon-test-runner:latest")


def hardened_docker(**extra: Any) -> dict[str, Any]:
    """The ``[docker]`` settings of the cloud tests: the test image, this user, no network, tight limits."""
    return {
        "image": IMAGE,
        "user": f"{os.getuid()}:{os.getgid()}",
        "network": "none",
        "memory": 256 * 1024**2,
        "memory_swap": 256 * 1024**2,
        "pids_limit": 128,
        **extra,
    }


AGENT = Path(__file__).parent / "agents" / "fake_agent.sh"
# the project commits AGENT as .agent.sh, so it runs inside the container at the worktree path
SHELL_AGENT = "sh ./.agent.sh"


def _api() -> Any:
    import docker

    return docker.APIClient(version="auto", timeout=30)


def _containers(instance: str) -> list[dict[str, Any]]:
    api = _api()
    try:
        return list(api.containers(all=True, filters={"label": f"anyon.instance={instance}"}))
    finally:
        api.close()


def remove_instance_containers(instance: str) -> None:
    api = _api()
    try:
        for info in api.containers(all=True, filters={"label": f"anyon.instance={instance}"}):
            api.remove_container(info["Id"], force=True, v=True)
    finally:
        api.close()


def require_test_image() -> None:
    """A Docker Engine with the locally built runner image (a failure under CI, a skip elsewhere)."""
    require_docker()
    api = _api()
    try:
        api.inspect_image(IMAGE)
    except Exception:
        if IN_CI:
            pytest.fail(f"test image {IMAGE} is missing")
        pytest.skip(f"test image {IMAGE} is missing: run `bash scripts/build-test-image.sh`")
    finally:
        api.close()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LiveServer]:
    require_test_image()
    config = make_config(
        tmp_path,
        mode="cloud",
        docker=hardened_docker(
            cpus=1.0,
        ),
        executions={"stop_escalation_seconds": 0.5},
    )
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            use_fake_agent(server, SHELL_AGENT)
            server.instance = instance  # type: ignore[attr-defined]
            yield server
    finally:
        remove_instance_containers(instance)


def _project_with_agent(server: LiveServer, tmp_path: Path) -> dict[str, Any]:
    project = server.ok(
        "POST",
        "/api/projects",
        json={
            "name": "cloudproj",
            "git_repo_path": str(tmp_path / "cloudproj"),
            "use_existing_repo": False,
            "setup_script": "echo setup-ran-as-$(id -u) | tee setup.log",
            "cleanup_script": "hostname > cleanup.txt",
        },
    )
    repo = pygit2.Repository(project["git_repo_path"])
    shutil.copy(AGENT, Path(project["git_repo_path"]) / ".agent.sh")
    repo.index.add(".agent.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "add agent", repo.index.write_tree(), [repo.head.target])
    return project  # type: ignore[no-any-return]


def test_attempt_runs_inside_its_hardened_container(cloud: LiveServer, tmp_path: Path) -> None:
    info = cloud.ok("GET", "/api/info")
    assert info["is_cloud"] is True
    project = _project_with_agent(cloud, tmp_path)
    task, attempt = start(cloud, project, "Edit in container")
    processes = wait_processes(cloud, attempt["id"], 3, timeout=120)
    assert [p["status"] for p in processes] == ["completed"] * 3, processes
    wait_task_status(cloud, task["id"], "inreview")
    files = branch_files(project["git_repo_path"], attempt["branch"])
    assert {"agent.txt", "whoami.txt", "setup.log", "cleanup.txt"} <= files

    containers = _containers(cloud.instance)  # type: ignore[attr-defined]
    assert len(containers) == 1
    container = containers[0]
    assert container["Labels"]["anyon.attempt"] == attempt["id"]
    inspect = _api().inspect_container(container["Id"])
    host = inspect["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["Memory"] == 256 * 1024**2 and host["PidsLimit"] == 128
    assert inspect["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    worktree = cloud.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    assert Path(worktree, "cleanup.txt").read_text().strip() == inspect["Config"]["Hostname"]
    assert Path(worktree, "whoami.txt").read_text().strip() == str(os.getuid())
    logs = "".join(c.content for c in cloud.services.logstore.read(processes[1]["id"]))
    assert f"host={inspect['Config']['Hostname']}" in logs

    # deleting the task removes the container and the worktree
    assert cloud.delete(f"/api/tasks/{task['id']}").status_code == 202
    deadline = time.monotonic() + 30
    while _containers(cloud.instance) or Path(worktree).exists():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "container or worktree left behind"
        time.sleep(0.1)


def test_a_process_over_its_memory_limit_fails_with_a_clear_log(cloud: LiveServer, tmp_path: Path) -> None:
    project = cloud.ok(
        "POST",
        "/api/projects",
        json={
            "name": "hungry",
            "git_repo_path": str(tmp_path / "hungry"),
            "use_existing_repo": False,
            "setup_script": "head -c 800m /dev/zero | tail > /dev/null",
        },
    )
    task, attempt = start(cloud, project, "never runs")
    processes = wait_processes(cloud, attempt["id"], 1, timeout=120)
    assert len(processes) == 1 and processes[0]["status"] == "failed"
    assert processes[0]["exit_code"] == 137
    logs = "".join(c.content for c in cloud.services.logstore.read(processes[0]["id"]))
    assert "exceeded its memory limit" in logs
    wait_task_status(cloud, task["id"], "inreview")
    # the container survives the OOM kill and still serves the attempt
    assert len(_containers(cloud.instance)) == 1  # type: ignore[attr-defined]
