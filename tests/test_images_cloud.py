"""Cloud mode: a task's image reaches the agent inside its container, at the path its prompt names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pygit2
import pytest

from tests.live_server import LiveServer
from tests.test_executions_cloud import _project_with_agent, cloud  # noqa: F401 - the fixture
from tests.test_executions_local import branch_files, wait_processes, wait_task_status
from tests.test_images import png

pytestmark = pytest.mark.docker


def test_the_agent_in_its_container_reads_the_task_image(cloud: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    project = _project_with_agent(cloud, tmp_path)
    data = png(7)
    image = cloud.post("/api/images/upload", files={"image": ("shot.png", data, "image/png")}).json()["data"]
    task = cloud.ok(
        "POST",
        "/api/tasks",
        json={
            "project_id": project["id"],
            "title": "look",
            "description": f"see ![shot]({image['file_path']})",
            "image_ids": [image["id"]],
        },
    )
    attempt = cloud.ok(
        "POST",
        "/api/task-attempts",
        json={
            "task_id": task["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        },
    )
    processes = wait_processes(cloud, attempt["id"], 3, timeout=120)
    assert [p["status"] for p in processes] == ["completed"] * 3, processes
    wait_task_status(cloud, task["id"], "inreview")
    worktree = cloud.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    placed = f"{worktree}/{image['file_path']}"
    branch = pygit2.Repository(project["git_repo_path"]).lookup_branch(attempt["branch"]).peel(pygit2.Commit)
    seen = branch.tree["seen.txt"].data.decode()  # type: ignore[attr-defined]
    # read inside the container, at the very path the prompt gave (path identity)
    assert seen.split() == [hashlib.sha256(data).hexdigest(), placed]
    assert ".vibe-images" not in branch_files(project["git_repo_path"], attempt["branch"])
