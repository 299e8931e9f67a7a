"""Copilot inside the attempt's container (cloud mode, real Docker Engine): its follow-up resumes the session.

The stand-in (``tests/agents/fake_copilot.sh``, busybox sh only) keeps its sessions in the container's HOME
as the real CLI does, so a follow-up that did not name the first run's session would fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import LiveServer
from tests.test_approvals_cloud import _project
from tests.test_executions_cloud import cloud as cloud
from tests.test_executions_local import branch_files, wait_processes
from tests.test_output_agents import entries

pytestmark = pytest.mark.docker

AGENT = Path(__file__).parent / "agents" / "fake_copilot.sh"


@pytest.fixture
def copilot_cloud(cloud: LiveServer) -> Iterator[LiveServer]:
    profiles = {
        "COPILOT": {
            "DEFAULT": {"COPILOT": {"allow_all_tools": True, "base_command_override": "sh ./.agent.sh"}}
        }
    }
    cloud.ok("PUT", "/api/profiles", json={"executors": profiles})
    yield cloud


def test_copilot_in_the_container_and_its_follow_up_resumes_the_session(
    copilot_cloud: LiveServer, tmp_path: Path
) -> None:
    server = copilot_cloud
    project = _project(server, tmp_path, AGENT)
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "Add a file"})
    body = {"task_id": task["id"], "executor_profile_id": {"executor": "COPILOT"}, "base_branch": "main"}
    attempt = server.ok("POST", "/api/task-attempts", json=body)
    first = wait_processes(server, attempt["id"], 1, timeout=60)[0]
    assert first["status"] == "completed", first
    answers = [
        e["content"] for e in entries(server, first["id"]) if e["entry_type"]["type"] == "assistant_message"
    ]
    assert answers == ["Copilot in the container: Add a file", f"Session {first['id']}"]
    assert "standin.txt" in branch_files(project["git_repo_path"], attempt["branch"])

    deadline = time.monotonic() + 30
    while (
        sent := server.post(f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "More"})
    ).status_code == 409:
        assert time.monotonic() < deadline, sent.text
        time.sleep(0.1)
    assert sent.json()["success"] is True, sent.text
    assert sent.json()["data"]["executor_action"]["typ"]["session_id"] == first["id"]
    second = wait_processes(server, attempt["id"], 2, timeout=60)[1]
    assert second["status"] == "completed", second
    answers = [
        e["content"] for e in entries(server, second["id"]) if e["entry_type"]["type"] == "assistant_message"
    ]
    assert answers == [f"Resumed {first['id']} after 1 turn(s): More"]
