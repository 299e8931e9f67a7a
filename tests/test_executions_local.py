"""The execution lifecycle in local mode, through the HTTP API, with a stand-in agent (real processes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pygit2
import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server

AGENT = Path(__file__).parent / "agents" / "fake_claude.py"


def use_fake_agent(server: LiveServer, command: str | None = None) -> None:
    override = command or f"{sys.executable} {AGENT}"
    profiles = {
        "executors": {"CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": {"base_command_override": override}}}}
    }
    server.ok("PUT", "/api/profiles", json=profiles)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path, executions={"stop_escalation_seconds": 0.5})) as live:
        use_fake_agent(live)
        yield live


def make_project(server: LiveServer, tmp_path: Path, **scripts: str) -> dict[str, Any]:
    body = {"name": "proj", "git_repo_path": str(tmp_path / "proj"), "use_existing_repo": False, **scripts}
    return server.ok("POST", "/api/projects", json=body)  # type: ignore[no-any-return]


class ApiClient(Protocol):
    """Anything that calls the API and returns the envelope's data: an in-process or a separate server."""

    def ok(self, method: str, path: str, **kw: Any) -> Any: ...


def start(
    server: ApiClient, project: dict[str, Any], title: str, description: str | None = None, base: str = "main"
) -> tuple[dict[str, Any], dict[str, Any]]:
    task_body = {"project_id": project["id"], "title": title}
    if description is not None:
        task_body["description"] = description
    task = server.ok("POST", "/api/tasks", json=task_body)
    attempt = server.ok(
        "POST",
        "/api/task-attempts",
        json={
            "task_id": task["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": base,
        },
    )
    return task, attempt


def wait_processes(
    server: LiveServer, attempt_id: str, count: int, timeout: float = 30.0, done: bool = True
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        processes = server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt_id}")
        finished = [p for p in processes if p["status"] != "running"]
        if len(processes) >= count and (not done or len(finished) == len(processes)):
            return processes  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {count} processes: {processes}")
        time.sleep(0.05)


def wait_task_status(server: LiveServer, task_id: str, status: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while server.ok("GET", f"/api/tasks/{task_id}")["status"] != status:
        assert time.monotonic() < deadline, f"task never reached {status}"
        time.sleep(0.05)


def branch_files(repo_path: str, branch: str) -> set[str]:
    repo = pygit2.Repository(repo_path)
    tree = repo.lookup_branch(branch).peel(pygit2.Commit).tree
    return {entry.name for entry in tree}


def test_setup_agent_cleanup_chain_commits_on_the_branch(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(
        server, tmp_path, setup_script="echo setup > setup.log", cleanup_script="echo cleaned > cleanup.txt"
    )
    task, attempt = start(server, project, "Add agent file")
    assert attempt["container_ref"] is None and attempt["branch"].startswith("vk/")
    processes = wait_processes(server, attempt["id"], 3)
    assert [p["run_reason"] for p in processes] == ["setupscript", "codingagent", "cleanupscript"]
    assert all(p["status"] == "completed" and p["exit_code"] == 0 for p in processes)
    agent = processes[1]
    assert agent["executor_action"]["typ"]["type"] == "CodingAgentInitialRequest"
    assert agent["executor_action"]["typ"]["prompt"] == "Add agent file"
    assert agent["before_head_commit"] != agent["after_head_commit"]
    wait_task_status(server, task["id"], "inreview")
    files = branch_files(project["git_repo_path"], attempt["branch"])
    assert {"agent.txt", "cleanup.txt", "setup.log"} <= files
    repo = pygit2.Repository(project["git_repo_path"])
    messages = [c.message for c in repo.walk(repo.lookup_branch(attempt["branch"]).target)]
    assert messages[0].startswith("Cleanup script changes for task attempt")
    assert messages[1].startswith("Done: Add agent file")
    attempt_now = server.ok("GET", f"/api/task-attempts/{attempt['id']}")
    assert Path(attempt_now["container_ref"]).is_dir()
    logs = server.services.logstore.read(agent["id"])
    assert any("Working on: Add agent file" in chunk.content for chunk in logs)


def test_follow_up_resumes_the_agent_session(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task, attempt = start(server, project, "First")
    wait_processes(server, attempt["id"], 1)
    wait_task_status(server, task["id"], "inreview")
    process = server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "Second"})
    assert process["executor_action"]["typ"]["type"] == "CodingAgentFollowUpRequest"
    assert process["executor_action"]["typ"]["session_id"].startswith("sess-")
    wait_processes(server, attempt["id"], 2)
    assert "followup.txt" in branch_files(project["git_repo_path"], attempt["branch"])


def test_failing_agent_marks_failed_and_in_review(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path, cleanup_script="echo never > cleanup.txt")
    task, attempt = start(server, project, "please fail")
    processes = wait_processes(server, attempt["id"], 1)
    assert processes[0]["status"] == "failed" and processes[0]["exit_code"] == 3
    wait_task_status(server, task["id"], "inreview")
    listed = server.ok("GET", f"/api/tasks?project_id={project['id']}")[0]
    assert listed["last_attempt_failed"] is True and listed["executor"] == "CLAUDE_CODE"
    time.sleep(0.3)
    assert len(server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")) == 1


def test_missing_executable_fails_with_a_clear_log(server: LiveServer, tmp_path: Path) -> None:
    use_fake_agent(server, "/nonexistent/agent-binary")
    project = make_project(server, tmp_path)
    task, attempt = start(server, project, "anything")
    process = wait_processes(server, attempt["id"], 1)[0]
    assert process["status"] == "failed"
    logs = "".join(c.content for c in server.services.logstore.read(process["id"]))
    assert "Failed to start execution" in logs and "agent-binary" in logs
    wait_task_status(server, task["id"], "inreview")


def test_stop_escalates_and_leaves_nothing_running(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task, attempt = start(server, project, "stubborn sleep")
    process = wait_processes(server, attempt["id"], 1, done=False)[0]
    deadline = time.monotonic() + 10
    while server.services.executions.store_for(__import__("uuid").UUID(process["id"])) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    response = server.ok("POST", f"/api/task-attempts/{attempt['id']}/stop")
    assert response is None
    stopped = server.ok("GET", f"/api/execution-processes/{process['id']}")
    assert stopped["status"] == "killed"
    wait_task_status(server, task["id"], "inreview")
    worktree = server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cwd_is(p, worktree)]
    assert leftovers == []
    # a stopped process can be deleted with its task
    assert server.delete(f"/api/tasks/{task['id']}").status_code == 202


def _cwd_is(proc: Path, worktree: str) -> bool:
    try:
        return str((proc / "cwd").resolve()) == worktree
    except OSError:
        return False


def test_task_delete_refused_while_running_then_cleans_the_worktree(
    server: LiveServer, tmp_path: Path
) -> None:
    project = make_project(server, tmp_path)
    task, attempt = start(server, project, "sleep")
    wait_processes(server, attempt["id"], 1, done=False)
    response = server.delete(f"/api/tasks/{task['id']}")
    assert response.status_code == 409 and response.json()["success"] is False
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/stop")
    worktree = server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    assert server.delete(f"/api/tasks/{task['id']}").status_code == 202
    deadline = time.monotonic() + 10
    while Path(worktree).exists():
        assert time.monotonic() < deadline, "worktree not removed"
        time.sleep(0.05)


def test_bad_attempt_requests(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "t"})
    body = {"task_id": task["id"], "executor_profile_id": {"executor": "NOPE"}, "base_branch": "main"}
    assert server.post("/api/task-attempts", json=body).json()["success"] is False
    body = {
        "task_id": task["id"],
        "executor_profile_id": {"executor": "CLAUDE_CODE", "variant": "NOPE"},
        "base_branch": "main",
    }
    assert server.post("/api/task-attempts", json=body).json()["success"] is False
    body = {
        "task_id": task["id"],
        "executor_profile_id": {"executor": "CLAUDE_CODE"},
        "base_branch": "no-such",
    }
    assert "no-such" in server.post("/api/task-attempts", json=body).json()["message"]
    assert server.ok("GET", f"/api/task-attempts?task_id={task['id']}") == []


def test_concurrency_limit_queues_in_order(tmp_path: Path) -> None:
    config = make_config(tmp_path, executions={"max_concurrent": 1, "stop_escalation_seconds": 0.5})
    with live_server(config) as server:
        use_fake_agent(server)
        project = make_project(server, tmp_path)
        _, first = start(server, project, "sleep long")
        wait_processes(server, first["id"], 1, done=False)
        deadline = time.monotonic() + 10
        while server.ok("GET", "/api/executions/status")["running"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _, second = start(server, project, "quick")
        second_process = wait_processes(server, second["id"], 1, done=False)[0]
        while server.ok("GET", "/api/executions/status")["queued"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert server.ok("GET", f"/api/execution-processes/{second_process['id']}")["status"] == "running"
        server.ok("POST", f"/api/task-attempts/{first['id']}/stop")
        done = wait_processes(server, second["id"], 1)[0]
        assert done["status"] == "completed"
        logs = "".join(c.content for c in server.services.logstore.read(done["id"]))
        assert "Waiting for a free execution slot" in logs


def test_dev_server_needs_a_script(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _, attempt = start(server, project, "noop")
    wait_processes(server, attempt["id"], 1)
    message = server.post(f"/api/task-attempts/{attempt['id']}/start-dev-server").json()["message"]
    assert message == "No dev server script configured for this project"


def test_a_follow_up_sent_on_seeing_completed_waits_for_the_close(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status is written before the process is closed (its rows, the hooks): a follow-up sent in that
    moment is accepted once the close is done, not refused with 409 "still running"."""
    records = server.services.executions._parts.supervisor._records
    close_rows = records.close_rows
    slow = {"first": True}

    def slow_close(*args: Any, **kwargs: Any) -> None:
        if slow.pop("first", False):
            time.sleep(1.0)  # a loaded machine: the close takes a while after the status is visible
        close_rows(*args, **kwargs)

    monkeypatch.setattr(records, "close_rows", slow_close)
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "First")
    wait_processes(server, attempt["id"], 1)  # "completed" is visible; the close is still running
    sent = server.post(f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "Second"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["data"]["executor_action"]["typ"]["type"] == "CodingAgentFollowUpRequest"
    processes = wait_processes(server, attempt["id"], 2)
    assert [p["status"] for p in processes] == ["completed", "completed"]
