"""Claude Code's control protocol inside the attempt's container (cloud mode, real Docker Engine).

The stand-in (``tests/agents/fake_claude_control.sh``, busybox sh only) runs in the hardened container
through an Engine API exec whose stdin stays open: the server's control messages reach it while it runs,
its tool approval waits for the answer given over HTTP, and the follow-up resumes its session.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.live_server import LiveServer
from tests.test_approvals import agent_process, pending, respond, start_variant, status_of
from tests.test_executions_cloud import cloud as cloud
from tests.test_executions_local import branch_files, wait_processes, wait_task_status
from tests.test_streams import read_to_finished

pytestmark = pytest.mark.docker

AGENT = Path(__file__).parent / "agents" / "fake_claude_control.sh"
CODEX_AGENT = Path(__file__).parent / "agents" / "fake_codex.sh"


@pytest.fixture
def approvals_cloud(cloud: LiveServer) -> Iterator[LiveServer]:
    override = "sh ./.agent.sh"
    variants = {
        "DEFAULT": {"CLAUDE_CODE": {"base_command_override": override}},
        "APPROVALS": {"CLAUDE_CODE": {"approvals": True, "base_command_override": override}},
    }
    codex = {
        "APPROVALS": {
            "CODEX": {
                "sandbox": "workspace-write",
                "ask_for_approval": "unless-trusted",
                "base_command_override": override,
            }
        }
    }
    cloud.ok("PUT", "/api/profiles", json={"executors": {"CLAUDE_CODE": variants, "CODEX": codex}})
    yield cloud


def _project(server: LiveServer, tmp_path: Path, agent: Path = AGENT) -> dict[str, Any]:
    body = {"name": "ctl", "git_repo_path": str(tmp_path / "ctl"), "use_existing_repo": False}
    project = server.ok("POST", "/api/projects", json=body)
    repo = pygit2.Repository(project["git_repo_path"])
    shutil.copy(agent, Path(project["git_repo_path"]) / ".agent.sh")
    repo.index.add(".agent.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "add agent", repo.index.write_tree(), [repo.head.target])
    return project  # type: ignore[no-any-return]


def _received(server: LiveServer, attempt_id: str) -> list[dict[str, Any]]:
    worktree = server.ok("GET", f"/api/task-attempts/{attempt_id}")["container_ref"]
    return [json.loads(line) for line in Path(worktree, "protocol.jsonl").read_text().splitlines()]


def test_control_protocol_and_approval_inside_the_container(
    approvals_cloud: LiveServer, tmp_path: Path
) -> None:
    server = approvals_cloud
    project = _project(server, tmp_path)
    task, attempt = start_variant(server, project, "container work", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Bash") as (conn, doc, status):
        assert server.ok("GET", f"/api/execution-processes/{process['id']}")["status"] == "running"
        answer = respond(server, status["approval_id"], process["id"], {"status": "approved"})
        assert answer.json() == {"status": "approved"}
        doc, _ = read_to_finished(conn, doc, timeout=60)
    assert status_of(doc, "Bash") == {"status": "success"}
    done = wait_processes(server, attempt["id"], 1, timeout=60)[0]
    assert done["status"] == "completed", done
    wait_task_status(server, task["id"], "inreview")
    assert "approved.txt" in branch_files(project["git_repo_path"], attempt["branch"])
    received = _received(server, attempt["id"])
    subtypes = [m["request"]["subtype"] for m in received if m.get("type") == "control_request"]
    assert subtypes == ["initialize", "set_permission_mode"]
    response = next(m for m in received if m.get("type") == "control_response")
    assert response["response"]["request_id"] == "req-sh-1"
    assert response["response"]["response"]["behavior"] == "allow"

    # the follow-up resumes the session in a new exec of the same container, and a denial reaches it
    body = {"prompt": "again", "variant": "APPROVALS"}
    follow_up = server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json=body)
    assert follow_up["executor_action"]["typ"]["session_id"] == "sess-sh-ctl"
    with pending(server, follow_up["id"], "Bash") as (conn, doc, status):
        denial = {"status": "denied", "reason": "not in the cloud"}
        assert respond(server, status["approval_id"], follow_up["id"], denial).json() == denial
        doc, _ = read_to_finished(conn, doc, timeout=60)
    assert status_of(doc, "Bash") == {"status": "denied", "reason": "not in the cloud"}
    texts = [e["content"]["content"] for e in doc["entries"]]
    assert "Denied in container" in texts
    assert wait_processes(server, attempt["id"], 2, timeout=60)[1]["status"] == "completed"


def test_stop_in_the_container_cancels_the_approval(approvals_cloud: LiveServer, tmp_path: Path) -> None:
    server = approvals_cloud
    project = _project(server, tmp_path)
    _task, attempt = start_variant(server, project, "stop me", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Bash") as (conn, doc, status):
        server.ok("POST", f"/api/execution-processes/{process['id']}/stop")
        doc, _ = read_to_finished(conn, doc, timeout=60)
    assert status_of(doc, "Bash")["status"] == "denied"
    assert wait_processes(server, attempt["id"], 1, timeout=60)[0]["status"] == "killed"
    late = respond(server, status["approval_id"], process["id"], {"status": "approved"})
    assert late.status_code == 409
    assert server.services.approvals.pending_count() == 0


def test_codex_app_server_and_its_approval_inside_the_container(
    approvals_cloud: LiveServer, tmp_path: Path
) -> None:
    server = approvals_cloud
    project = _project(server, tmp_path, CODEX_AGENT)
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "codex in cloud"})
    body = {
        "task_id": task["id"],
        "executor_profile_id": {"executor": "CODEX", "variant": "APPROVALS"},
        "base_branch": "main",
    }
    attempt = server.ok("POST", "/api/task-attempts", json=body)
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "exec_command") as (conn, doc, status):
        assert (
            respond(server, status["approval_id"], process["id"], {"status": "approved"}).status_code == 200
        )
        doc, _ = read_to_finished(conn, doc, timeout=60)
    assert status_of(doc, "exec_command") == {"status": "success"}
    texts = [e["content"]["content"] for e in doc["entries"]]
    assert "Approved in container" in texts
    done = wait_processes(server, attempt["id"], 1, timeout=60)[0]
    assert done["status"] == "completed", done
    assert "approved.txt" in branch_files(project["git_repo_path"], attempt["branch"])
    wait_task_status(server, task["id"], "inreview")
    follow_up = server.ok(
        "POST",
        f"/api/task-attempts/{attempt['id']}/follow-up",
        json={"prompt": "again", "variant": "APPROVALS"},
    )
    assert follow_up["executor_action"]["typ"]["session_id"] == "/tmp/rollout-sh.jsonl"
    with pending(server, follow_up["id"], "exec_command") as (conn, doc, status):
        assert (
            respond(server, status["approval_id"], follow_up["id"], {"status": "denied"}).status_code == 200
        )
        doc, _ = read_to_finished(conn, doc, timeout=60)
    assert "Denied in container" in [e["content"]["content"] for e in doc["entries"]]
    received = _received(server, attempt["id"])
    assert [m["params"]["path"] for m in received if m.get("method") == "resumeConversation"] == [
        "/tmp/rollout-sh.jsonl"
    ]
