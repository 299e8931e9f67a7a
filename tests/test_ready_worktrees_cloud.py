"""Cloud mode: the warm container's folder holds a checkout made ahead; the attempt that takes the slot
gets its own repository in it as usual, and a branch that moved meanwhile is never started from."""

# ruff: noqa: F811 - the Docker fixtures are imported from test_docker_runner
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from anyon.services.composition.runners import instance_id
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_docker_runner import IMAGE, docker_engine  # noqa: F401 - fixture
from tests.test_executions_cloud import SHELL_AGENT, hardened_docker, remove_instance_containers
from tests.test_executions_local import branch_files, start, use_fake_agent, wait_processes, wait_task_status
from tests.test_ready_worktrees import commit_on_main
from tests.test_warm import _pool_ids, _project, _wait

pytestmark = pytest.mark.docker


@pytest.fixture
def cloud(tmp_path: Path, docker_engine: Any) -> Iterator[LiveServer]:
    config = make_config(
        tmp_path,
        mode="cloud",
        docker=hardened_docker(
            warm_pool_size=1,
        ),
        executions={"ready_worktrees": 1},
    )
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            use_fake_agent(server, SHELL_AGENT)
            yield server
    finally:
        remove_instance_containers(instance)


def _slot(server: LiveServer) -> Any:
    pool = server.services.executions.warm_pool
    _wait(lambda: len(_pool_ids(server)) == 1 and not pool.filling, timeout=60)
    time.sleep(0.3)  # an activity mark still on its way would start another fill
    _wait(lambda: len(_pool_ids(server)) == 1 and not pool.filling, timeout=60)
    return pool.slots()[0]


def test_the_warm_slot_brings_its_checkout_and_the_attempt_its_own_repository(
    cloud: LiveServer, tmp_path: Path
) -> None:
    project = _project(cloud, tmp_path)  # created, then a commit: its first slot may be of the old tip
    _slot(cloud)
    cloud.ok("GET", f"/api/projects/{project['id']}")  # opening it drops a stale slot and makes another
    slot = _slot(cloud)
    assert slot.checkout is not None and os.path.isfile(os.path.join(slot.folder, ".agent.sh"))
    repo = pygit2.Repository(project["git_repo_path"])
    assert list(repo.branches.local) == ["main"]

    task, attempt = start(cloud, project, "From the slot")
    assert attempt["id"] == str(slot.attempt_id)
    assert [p["status"] for p in wait_processes(cloud, attempt["id"], 1, timeout=60)] == ["completed"]
    wait_task_status(cloud, task["id"], "inreview")
    attempt = cloud.ok("GET", f"/api/task-attempts/{attempt['id']}")
    assert attempt["container_ref"] == slot.folder
    dotgit = Path(slot.folder) / ".git"
    assert dotgit.is_dir() and (dotgit / "HEAD").read_text() == f"ref: refs/heads/{attempt['branch']}\n"
    assert {"agent.txt", "whoami.txt", ".agent.sh"} <= branch_files(
        project["git_repo_path"], attempt["branch"]
    )

    cloud.ok("DELETE", f"/api/tasks/{task['id']}")
    refill = _slot(cloud)
    assert refill.checkout is not None
    cloud.ok("DELETE", f"/api/projects/{project['id']}")
    assert not os.path.exists(refill.folder)
    _wait(lambda: not os.path.exists(slot.folder), timeout=60)
    assert pygit2.Repository(project["git_repo_path"]).list_worktrees() == []


def test_a_moved_branch_empties_the_slot_in_place_and_checks_out_the_new_tip(
    cloud: LiveServer, tmp_path: Path
) -> None:
    project = _project(cloud, tmp_path)
    _slot(cloud)
    task = cloud.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "after the move"})
    slot = _slot(cloud)
    assert slot.checkout is not None
    commit_on_main(project["git_repo_path"], "new-file.txt")  # nothing tells the server
    body = {"task_id": task["id"], "executor_profile_id": {"executor": "CLAUDE_CODE"}, "base_branch": "main"}
    attempt = cloud.ok("POST", "/api/task-attempts", json=body)
    assert attempt["id"] == str(slot.attempt_id)
    assert [p["status"] for p in wait_processes(cloud, attempt["id"], 1, timeout=60)] == ["completed"]
    wait_task_status(cloud, task["id"], "inreview")
    assert cloud.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"] == slot.folder
    assert os.stat(slot.folder).st_ino == slot.inode  # the folder the container mounts, refilled in place
    files = branch_files(project["git_repo_path"], attempt["branch"])
    assert {"new-file.txt", "agent.txt", "whoami.txt"} <= files
