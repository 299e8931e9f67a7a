"""Draft routes: autosave with versions, retry drafts, and queued follow-ups that send themselves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import make_project, start, use_fake_agent, wait_processes, wait_task_status


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path, executions={"stop_escalation_seconds": 0.5})) as live:
        use_fake_agent(live)
        yield live


def test_autosave_versions_and_conflicts(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "noop")
    url = f"/api/task-attempts/{attempt['id']}/draft"
    empty = server.ok("GET", url, params={"type": "follow_up"})
    assert empty == {
        "task_attempt_id": attempt["id"],
        "draft_type": "follow_up",
        "retry_process_id": None,
        "prompt": "",
        "queued": False,
        "variant": None,
        "image_ids": None,
        "version": 0,
    }
    saved = server.ok("PUT", url, params={"type": "follow_up"}, json={"prompt": "next step"})
    assert saved["prompt"] == "next step" and saved["version"] == 1
    assert (
        server.put(url, params={"type": "follow_up"}, json={"prompt": "x", "version": 0}).status_code == 409
    )
    assert server.ok("GET", url)["prompt"] == "next step"
    assert server.delete(url, params={"type": "follow_up"}).json()["success"] is False
    assert server.get(url, params={"type": "bogus"}).json()["success"] is False
    assert server.put(url, params={"type": "retry"}, json={"prompt": "r"}).json()["success"] is False


def test_queue_when_idle_sends_the_follow_up(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task, attempt = start(server, project, "first")
    wait_processes(server, attempt["id"], 1)
    wait_task_status(server, task["id"], "inreview")
    url = f"/api/task-attempts/{attempt['id']}/draft"
    server.ok("PUT", url, params={"type": "follow_up"}, json={"prompt": "queued work"})
    server.ok("POST", f"{url}/queue", params={"type": "follow_up"}, json={"queued": True})
    processes = wait_processes(server, attempt["id"], 2)
    assert processes[1]["executor_action"]["typ"]["prompt"] == "queued work"
    assert server.ok("GET", url)["prompt"] == ""


def test_queue_while_running_sends_after_finish(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "sleep")
    wait_processes(server, attempt["id"], 1, done=False)
    url = f"/api/task-attempts/{attempt['id']}/draft"
    server.ok("PUT", url, params={"type": "follow_up"}, json={"prompt": "after stop"})
    queued = server.ok("POST", f"{url}/queue", params={"type": "follow_up"}, json={"queued": True})
    assert queued["queued"] is True
    time.sleep(0.3)
    assert len(server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")) == 1
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/stop")
    processes = wait_processes(server, attempt["id"], 2)
    assert processes[1]["executor_action"]["typ"]["prompt"] == "after stop"


def test_unknown_attempt(server: LiveServer) -> None:
    import uuid

    assert server.get(f"/api/task-attempts/{uuid.uuid4()}/draft").status_code == 404
