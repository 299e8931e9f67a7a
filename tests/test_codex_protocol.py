"""Codex's app-server JSON-RPC protocol and its approvals, through the real server, HTTP and WebSockets.

The agent is ``tests/agents/fake_codex.py``, a stand-in for ``codex app-server`` (local mode: host
processes with the stdin kept open).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import LiveServer
from tests.test_approvals import (
    agent_process,
    entries,
    pending,
    respond,
    serve,
    status_of,
    tools,
)
from tests.test_executions_local import branch_files, make_project, wait_processes, wait_task_status
from tests.test_streams import read_to_finished, ws

AGENT = Path(__file__).parent / "agents" / "fake_codex.py"


def use_fake_codex(server: LiveServer, *extra: str) -> None:
    override = " ".join([sys.executable, str(AGENT), *extra])
    variants = {
        "DEFAULT": {"CODEX": {"sandbox": "danger-full-access", "base_command_override": override}},
        "APPROVALS": {
            "CODEX": {
                "sandbox": "workspace-write",
                "ask_for_approval": "unless-trusted",
                "model": "fake-model",
                "base_command_override": override,
            }
        },
    }
    server.ok("PUT", "/api/profiles", json={"executors": {"CODEX": variants}})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    for live in serve(tmp_path):
        use_fake_codex(live)
        yield live


def start_codex(
    server: LiveServer, project: dict[str, Any], title: str, variant: str = "DEFAULT"
) -> tuple[dict[str, Any], dict[str, Any]]:
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": title})
    profile = {"executor": "CODEX", "variant": variant}
    body = {"task_id": task["id"], "executor_profile_id": profile, "base_branch": "main"}
    return task, server.ok("POST", "/api/task-attempts", json=body)


def received(server: LiveServer, attempt_id: str) -> list[dict[str, Any]]:
    worktree = server.ok("GET", f"/api/task-attempts/{attempt_id}")["container_ref"]
    return [json.loads(line) for line in Path(worktree, "protocol.jsonl").read_text().splitlines()]


def conversation(server: LiveServer, process_id: str) -> dict[str, Any]:
    with ws(server, f"/api/execution-processes/{process_id}/normalized-logs/ws") as conn:
        doc, _ = read_to_finished(conn, {"entries": []})
    return doc  # type: ignore[no-any-return]


def test_a_codex_turn_is_normalised_and_its_session_resumed(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task, attempt = start_codex(server, project, "write a file")
    done = wait_processes(server, attempt["id"], 1)[0]
    assert done["status"] == "completed", done
    doc = conversation(server, done["id"])
    kinds = [(e["entry_type"]["type"], e["content"]) for e in entries(doc)]
    assert ("system_message", "System initialized with model: fake-codex") in kinds
    assert ("assistant_message", "Done: write a file") in kinds
    (command,) = tools(doc)
    assert command["entry_type"]["action_type"]["action"] == "command_run"
    assert command["entry_type"]["action_type"]["command"] == "echo > agent.txt"
    assert command["entry_type"]["status"] == {"status": "success"}
    assert "agent.txt" in branch_files(project["git_repo_path"], attempt["branch"])
    sent = received(server, attempt["id"])
    methods = [m.get("method") for m in sent]
    assert methods == [
        "initialize",
        "initialized",
        "newConversation",
        "addConversationListener",
        "sendUserMessage",
    ]
    new = sent[2]["params"]
    assert new["cwd"] == server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    assert new["sandbox"] == "danger-full-access" and "approvalPolicy" not in new
    assert sent[4]["params"]["items"] == [{"type": "text", "data": {"text": "write a file"}}]

    wait_task_status(server, task["id"], "inreview")
    follow_up = server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "more"})
    rollout = follow_up["executor_action"]["typ"]["session_id"]
    assert rollout.startswith("/tmp/fake-codex/rollout-")
    assert wait_processes(server, attempt["id"], 2)[1]["status"] == "completed"
    resumed = [m for m in received(server, attempt["id"]) if m.get("method") == "resumeConversation"]
    assert [m["params"]["path"] for m in resumed] == [rollout]
    assert "followup.txt" in branch_files(project["git_repo_path"], attempt["branch"])


@pytest.mark.parametrize(("prompt", "tool"), [("ask to run", "exec_command"), ("patch it", "apply_patch")])
def test_approvals_variant_asks_the_user(server: LiveServer, tmp_path: Path, prompt: str, tool: str) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_codex(server, project, prompt, "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], tool) as (conn, doc, status):
        entry = next(t for t in tools(doc) if t["entry_type"]["tool_name"] == tool)
        action = entry["entry_type"]["action_type"]["action"]
        assert action == ("command_run" if tool == "exec_command" else "file_edit")
        assert (
            respond(server, status["approval_id"], process["id"], {"status": "approved"}).status_code == 200
        )
        doc, _ = read_to_finished(conn, doc)
    assert status_of(doc, tool) == {"status": "success"}
    assert len(tools(doc)) == 1  # the approval's entry is the call's entry
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "completed"
    written = "approved.txt" if tool == "exec_command" else "patched.txt"
    assert written in branch_files(project["git_repo_path"], attempt["branch"])
    sent = received(server, attempt["id"])
    new = next(m for m in sent if m.get("method") == "newConversation")["params"]
    assert new["approvalPolicy"] == "unless-trusted" and new["sandbox"] == "workspace-write"
    assert new["model"] == "fake-model"
    answer = next(m for m in sent if m.get("id") == "srv-1")
    assert answer["result"] == {"decision": "approved"}


def test_a_denied_command_is_not_run(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_codex(server, project, "ask to run", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "exec_command") as (conn, doc, status):
        denial = {"status": "denied", "reason": "too risky"}
        assert respond(server, status["approval_id"], process["id"], denial).json() == denial
        doc, _ = read_to_finished(conn, doc)
    assert status_of(doc, "exec_command") == denial
    assert any(e["content"] == "Stopped: denied" for e in entries(doc))
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "completed"
    assert "approved.txt" not in branch_files(project["git_repo_path"], attempt["branch"])
    again = respond(server, status["approval_id"], process["id"], {"status": "approved"})
    assert again.status_code == 409


def test_default_variant_approves_by_itself(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_codex(server, project, "ask to run", "DEFAULT")
    done = wait_processes(server, attempt["id"], 1)[0]
    assert done["status"] == "completed"
    assert server.services.approvals.pending_count() == 0
    answer = next(m for m in received(server, attempt["id"]) if m.get("id") == "srv-1")
    assert answer["result"] == {"decision": "approved_for_session"}
    assert "approved.txt" in branch_files(project["git_repo_path"], attempt["branch"])


def _errors(server: LiveServer, process_id: str) -> list[str]:
    doc = conversation(server, process_id)
    return [e["content"] for e in entries(doc) if e["entry_type"]["type"] == "error_message"]


def test_codex_without_an_answer_is_never_completed(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_codex(server, project, "silent")
    done = wait_processes(server, attempt["id"], 1)[0]
    assert done["status"] == "failed" and done["exit_code"] == 0
    assert any(
        "Codex ended without answering" in e and "codex login" in e for e in _errors(server, done["id"])
    )


def test_a_refused_conversation_fails_with_codex_s_reason(server: LiveServer, tmp_path: Path) -> None:
    use_fake_codex(server, "--autherror")
    project = make_project(server, tmp_path)
    _task, attempt = start_codex(server, project, "anything")
    done = wait_processes(server, attempt["id"], 1)[0]
    assert done["status"] == "failed" and done["exit_code"] == 0
    errors = _errors(server, done["id"])
    assert any("Codex refused newConversation: not logged in" in e for e in errors), errors


def test_an_abrupt_exit_fails(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_codex(server, project, "abrupt")
    done = wait_processes(server, attempt["id"], 1)[0]
    assert done["status"] == "failed" and done["exit_code"] == 1
    assert any("connection reset" in e for e in _errors(server, done["id"]))


def test_stop_cancels_a_pending_codex_approval(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_codex(server, project, "ask to run", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "exec_command") as (conn, doc, status):
        server.ok("POST", f"/api/execution-processes/{process['id']}/stop")
        doc, _ = read_to_finished(conn, doc)
    assert status_of(doc, "exec_command")["status"] == "denied"
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "killed"
    assert respond(server, status["approval_id"], process["id"], {"status": "approved"}).status_code == 409
