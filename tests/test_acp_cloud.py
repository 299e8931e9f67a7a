"""Gemini CLI and Qwen Code over ACP inside the attempt's container (cloud mode, real Docker Engine).

The stand-in (``tests/agents/fake_acp.sh``, busybox sh only) runs in the hardened container through an
Engine API exec whose stdin stays open: its ``session/request_permission`` waits for the answer given over
HTTP, and the follow-up reloads its session with ``session/load``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import LiveServer
from tests.test_acp_protocol import conversation, start_acp
from tests.test_approvals import agent_process, entries, pending, respond, status_of
from tests.test_approvals_cloud import _project, _received
from tests.test_executions_cloud import cloud as cloud
from tests.test_executions_local import branch_files, wait_processes, wait_task_status
from tests.test_streams import read_to_finished

pytestmark = pytest.mark.docker

AGENT = Path(__file__).parent / "agents" / "fake_acp.sh"


@pytest.fixture
def acp_cloud(cloud: LiveServer) -> Iterator[LiveServer]:
    override = "sh ./.agent.sh"
    executors = {
        executor: {"APPROVALS": {executor: {**model, "yolo": False, "base_command_override": override}}}
        for executor, model in (("GEMINI", {"model": "default"}), ("QWEN_CODE", {}))
    }
    cloud.ok("PUT", "/api/profiles", json={"executors": executors})
    yield cloud


@pytest.mark.parametrize("executor", ["GEMINI", "QWEN_CODE"])
def test_acp_permission_and_session_load_inside_the_container(
    acp_cloud: LiveServer, tmp_path: Path, executor: str
) -> None:
    server = acp_cloud
    project = _project(server, tmp_path, AGENT)
    task, attempt = start_acp(server, project, "acp in cloud", executor, "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Write approved.txt") as (conn, doc, status):
        assert server.ok("GET", f"/api/execution-processes/{process['id']}")["status"] == "running"
        answer = respond(server, status["approval_id"], process["id"], {"status": "approved"})
        assert answer.status_code == 200 and answer.json() == {"status": "approved"}
        doc, _ = read_to_finished(conn, doc, timeout=60)
    assert status_of(doc, "Write approved.txt") == {"status": "success"}
    texts = [e["content"] for e in entries(doc)]
    assert "Approved in container" in texts
    assert any(t.startswith("uid=") for t in texts), texts  # the sh stand-in ran
    done = wait_processes(server, attempt["id"], 1, timeout=60)[0]
    assert done["status"] == "completed", done
    wait_task_status(server, task["id"], "inreview")
    assert "approved.txt" in branch_files(project["git_repo_path"], attempt["branch"])
    sent = _received(server, attempt["id"])
    assert [m.get("method") for m in sent if "method" in m] == ["initialize", "session/new", "session/prompt"]
    answers = [m for m in sent if m.get("id") == "perm-sh"]
    assert answers[0]["result"] == {"outcome": {"outcome": "selected", "optionId": "allow"}}

    # the follow-up reloads the session in a new exec of the same container; a denial reaches the agent
    body = {"prompt": "again", "variant": "APPROVALS"}
    follow_up = server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json=body)
    assert follow_up["executor_action"]["typ"]["session_id"] == "acp-sh"
    with pending(server, follow_up["id"], "Write followup.txt") as (conn, doc, status):
        assert (
            respond(server, status["approval_id"], follow_up["id"], {"status": "denied"}).status_code == 200
        )
        doc, _ = read_to_finished(conn, doc, timeout=60)
    assert status_of(doc, "Write followup.txt") == {"status": "denied", "reason": None}
    second = wait_processes(server, attempt["id"], 2, timeout=60)[1]
    assert second["status"] == "completed", second
    texts = [e["content"] for e in entries(conversation(server, second["id"]))]
    assert "Denied in container" in texts
    assert "OLD HISTORY" not in texts  # the reloaded conversation is not shown again
    assert "followup.txt" not in branch_files(project["git_repo_path"], attempt["branch"])
    sent = _received(server, attempt["id"])
    loads = [m for m in sent if m.get("method") == "session/load"]
    assert [m["params"]["sessionId"] for m in loads] == ["acp-sh"]
    assert [m["result"] for m in sent if m.get("id") == "perm-sh"][1] == {
        "outcome": {"outcome": "selected", "optionId": "reject"}
    }
