"""Claude Code's control protocol and tool approvals, through the real server, HTTP and the WebSocket streams.

The agent is ``tests/agents/fake_claude.py``, a stand-in speaking stream-json and the control protocol
over the stdin/stdout the runner keeps open (local mode: host processes).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import AGENT, branch_files, make_project, wait_processes, wait_task_status
from tests.test_streams import follow, read_to_finished, ws

TIMEOUT = 30.0  # executions.approval_timeout_seconds in these tests, unless one says otherwise


def use_protocol_agent(server: LiveServer, command: str | None = None) -> None:
    override = command or f"{sys.executable} {AGENT}"
    variants = {
        "DEFAULT": {"CLAUDE_CODE": {"base_command_override": override}},
        "APPROVALS": {"CLAUDE_CODE": {"approvals": True, "base_command_override": override}},
        "PLAN": {"CLAUDE_CODE": {"plan": True, "base_command_override": override}},
    }
    server.ok("PUT", "/api/profiles", json={"executors": {"CLAUDE_CODE": variants}})


def serve(tmp_path: Path, timeout: float = TIMEOUT) -> Iterator[LiveServer]:
    executions = {"stop_escalation_seconds": 0.5, "approval_timeout_seconds": timeout}
    with live_server(make_config(tmp_path, executions=executions)) as live:
        use_protocol_agent(live)
        yield live


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path)


def start_variant(
    server: LiveServer, project: dict[str, Any], title: str, variant: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": title})
    profile = {"executor": "CLAUDE_CODE", "variant": variant}
    body = {"task_id": task["id"], "executor_profile_id": profile, "base_branch": "main"}
    return task, server.ok("POST", "/api/task-attempts", json=body)


def agent_process(server: LiveServer, attempt_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        processes = server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt_id}")
        agents = [p for p in processes if p["run_reason"] == "codingagent"]
        if agents:
            return agents[-1]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.05)


def entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["content"] for e in doc["entries"]]


def tools(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in entries(doc) if e["entry_type"]["type"] == "tool_use"]


def status_of(doc: dict[str, Any], tool_name: str) -> dict[str, Any]:
    found = [t["entry_type"]["status"] for t in tools(doc) if t["entry_type"]["tool_name"] == tool_name]
    assert found, f"no {tool_name} entry in {entries(doc)}"
    return found[-1]


def has_status(tool_name: str, status: str) -> Callable[[dict[str, Any]], bool]:
    def check(doc: dict[str, Any]) -> bool:
        return any(
            t["entry_type"]["tool_name"] == tool_name and t["entry_type"]["status"]["status"] == status
            for t in tools(doc)
        )

    return check


def respond(server: LiveServer, approval_id: str, process_id: str, status: Any) -> Any:
    body = {"execution_process_id": process_id, "status": status}
    return server.post(f"/api/approvals/{approval_id}/respond", json=body)


@contextlib.contextmanager
def pending(server: LiveServer, process_id: str, tool_name: str) -> Iterator[tuple[Any, dict[str, Any], Any]]:
    """Follow the normalized-logs stream until the tool waits for approval: (connection, document, status)."""
    with ws(server, f"/api/execution-processes/{process_id}/normalized-logs/ws") as conn:
        doc = follow(conn, {"entries": []}, has_status(tool_name, "pending_approval"))
        yield conn, doc, status_of(doc, tool_name)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def protocol_log(server: LiveServer, attempt_id: str) -> list[dict[str, Any]]:
    worktree = server.ok("GET", f"/api/task-attempts/{attempt_id}")["container_ref"]
    lines = (Path(worktree) / "protocol.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_approved_tool_runs_and_a_second_answer_is_a_conflict(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task, attempt = start_variant(server, project, "ask before bash", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Bash") as (conn, doc, status):
        assert set(status) == {"status", "approval_id", "requested_at", "timeout_at"}
        waited = (_ts(status["timeout_at"]) - _ts(status["requested_at"])).total_seconds()
        assert waited == pytest.approx(TIMEOUT, abs=0.01)
        assert status_of(doc, "Bash")["status"] == "pending_approval"
        # still waiting: the agent does nothing until the answer
        time.sleep(0.3)
        assert server.ok("GET", f"/api/execution-processes/{process['id']}")["status"] == "running"
        answer = respond(server, status["approval_id"], process["id"], {"status": "approved"})
        assert answer.status_code == 200 and answer.json() == {"status": "approved"}  # bare, no envelope
        doc, _ = read_to_finished(conn, doc)
    assert status_of(doc, "Bash") == {"status": "success"}
    assert any(e["content"] == "Approved and ran" for e in entries(doc))
    again = respond(server, status["approval_id"], process["id"], {"status": "denied"})
    assert again.status_code == 409 and "already approved" in again.json()["message"]
    done = wait_processes(server, attempt["id"], 1)
    assert done[0]["status"] == "completed"
    wait_task_status(server, task["id"], "inreview")
    assert "approved.txt" in branch_files(project["git_repo_path"], attempt["branch"])
    sent = protocol_log(server, attempt["id"])
    subtypes = [m["request"]["subtype"] for m in sent if m.get("type") == "control_request"]
    assert subtypes[:2] == ["initialize", "set_permission_mode"]
    assert sent[1]["request"]["mode"] == "default"
    hooks = sent[0]["request"]["hooks"]["PreToolUse"]
    assert hooks and all("anyon_ask_user" in h["hookCallbackIds"] for h in hooks)


def test_denied_tool_is_shown_denied_and_the_agent_stops(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_variant(server, project, "ask before bash", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Bash") as (conn, doc, status):
        answer = respond(
            server, status["approval_id"], process["id"], {"status": "denied", "reason": "not now"}
        )
        assert answer.json() == {"status": "denied", "reason": "not now"}
        doc, _ = read_to_finished(conn, doc)
    assert status_of(doc, "Bash") == {"status": "denied", "reason": "not now"}
    assert any(e["content"] == "Stopped: not now" for e in entries(doc))
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "completed"
    assert "approved.txt" not in branch_files(project["git_repo_path"], attempt["branch"])
    # the outcome is in the stored log too: the conversation read after the end still says "denied"
    with ws(server, f"/api/execution-processes/{process['id']}/normalized-logs/ws") as again:
        historic, _ = read_to_finished(again, {"entries": []})
    assert status_of(historic, "Bash") == {"status": "denied", "reason": "not now"}


def test_a_question_the_agent_withdraws_ends_at_once_unanswered(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_variant(server, project, "ask withdraw", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Bash") as (conn, doc, status):
        assert server.services.approvals.pending_count() == 1
        worktree = server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
        (Path(worktree) / "withdraw.now").write_text("")  # the stand-in cancels its control request now
        doc = follow(conn, doc, has_status("Bash", "denied"))
        reason = "The agent withdrew the question before it was answered"
        assert status_of(doc, "Bash") == {"status": "denied", "reason": reason}
        doc, _ = read_to_finished(conn, doc)
    assert server.services.approvals.pending_count() == 0  # ended at once, not at its timeout (30 s)
    late = respond(server, status["approval_id"], process["id"], {"status": "approved"})
    assert late.status_code == 409 and "withdrew" in late.json()["message"]
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "completed"
    # the outcome is stored (a later reader sees it), and the agent got no answer to the withdrawn request
    with ws(server, f"/api/execution-processes/{process['id']}/normalized-logs/ws") as again:
        historic, _ = read_to_finished(again, {"entries": []})
    assert status_of(historic, "Bash") == {"status": "denied", "reason": reason}
    sent = protocol_log(server, attempt["id"])
    answers = [m for m in sent if m.get("type") == "control_response"]
    assert all(m["response"].get("request_id") != "req-withdraw" for m in answers), answers


def test_bad_answers_change_nothing(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_variant(server, project, "ask before bash", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Bash") as (conn, doc, status):
        approval = status["approval_id"]
        unknown = respond(
            server, "7d0c3f7e-0000-4000-8000-000000000000", process["id"], {"status": "approved"}
        )
        assert unknown.status_code == 404 and "not found" in unknown.json()["message"]
        other = respond(server, approval, "7d0c3f7e-0000-4000-8000-000000000001", {"status": "approved"})
        assert other.status_code == 404
        for bad in ({"status": "pending"}, {"status": "timed_out"}, {"status": "maybe"}, "approved", {}):
            refused = respond(server, approval, process["id"], bad)
            assert 400 <= refused.status_code < 500, (bad, refused.status_code, refused.text)
            assert refused.json()["success"] is False and refused.json()["message"]
        refused = respond(server, approval, "not-a-uuid", {"status": "approved"})
        assert refused.status_code in (400, 422)
        raw = server.post(f"/api/approvals/{approval}/respond", content=b"{not json", headers=JSON)
        assert raw.status_code == 400
        extra = server.post(
            f"/api/approvals/{approval}/respond",
            json={"execution_process_id": process["id"], "status": {"status": "approved"}, "x": 1},
        )
        assert extra.status_code in (400, 422)
        # nothing of that reached the agent: the approval is still pending, and a real answer works
        assert server.ok("GET", f"/api/execution-processes/{process['id']}")["status"] == "running"
        assert status_of(doc, "Bash")["status"] == "pending_approval"
        assert respond(server, approval, process["id"], {"status": "approved"}).status_code == 200
        doc, _ = read_to_finished(conn, doc)
    assert status_of(doc, "Bash") == {"status": "success"}


JSON = {"Content-Type": "application/json"}


def test_an_unanswered_approval_times_out(tmp_path: Path) -> None:
    for server in serve(tmp_path, timeout=1.0):
        project = make_project(server, tmp_path)
        _task, attempt = start_variant(server, project, "ask before bash", "APPROVALS")
        process = agent_process(server, attempt["id"])
        with pending(server, process["id"], "Bash") as (conn, doc, status):
            waited = (_ts(status["timeout_at"]) - _ts(status["requested_at"])).total_seconds()
            assert waited == pytest.approx(1.0, abs=0.01)
            doc, _ = read_to_finished(conn, doc)
        assert status_of(doc, "Bash") == {"status": "timed_out"}
        assert any("timed out" in e["content"] for e in entries(doc))
        late = respond(server, status["approval_id"], process["id"], {"status": "approved"})
        assert late.status_code == 409 and "timed out" in late.json()["message"]
        assert "approved.txt" not in branch_files(project["git_repo_path"], attempt["branch"])


def test_plan_approval_switches_the_same_process_to_bypass_permissions(
    server: LiveServer, tmp_path: Path
) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_variant(server, project, "plan first", "PLAN")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "ExitPlanMode") as (conn, doc, status):
        plan_entry = next(t for t in tools(doc) if t["entry_type"]["tool_name"] == "ExitPlanMode")
        assert plan_entry["entry_type"]["action_type"] == {
            "action": "plan_presentation",
            "plan": "1. write plan.txt",
        }
        assert (
            respond(server, status["approval_id"], process["id"], {"status": "approved"}).status_code == 200
        )
        doc, _ = read_to_finished(conn, doc)
    assert status_of(doc, "ExitPlanMode") == {"status": "success"}
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "completed"
    worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    mode, updated = (worktree / "plan.txt").read_text().strip().split(" ", 1)
    assert mode == "mode=bypassPermissions"
    assert json.loads(updated.removeprefix("updated=")) == [
        {"type": "setMode", "mode": "bypassPermissions", "destination": "session"}
    ]
    sent = protocol_log(server, attempt["id"])
    modes = [
        m["request"]["mode"] for m in sent if m.get("request", {}).get("subtype") == "set_permission_mode"
    ]
    assert modes == ["plan", "bypassPermissions"]
    hooks = sent[0]["request"]["hooks"]["PreToolUse"]
    assert hooks[0] == {"matcher": "^ExitPlanMode$", "hookCallbackIds": ["anyon_ask_user"]}
    # one process did both: no second agent run was started for the execution
    processes = server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")
    assert [p["run_reason"] for p in processes] == ["codingagent"]


def test_stop_cancels_the_pending_approval_and_interrupts(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_variant(server, project, "ask and wait", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Bash") as (conn, doc, status):
        server.ok("POST", f"/api/execution-processes/{process['id']}/stop")
        doc, _ = read_to_finished(conn, doc)
    assert status_of(doc, "Bash")["status"] == "denied"
    assert "stopped" in status_of(doc, "Bash")["reason"]
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "killed"
    late = respond(server, status["approval_id"], process["id"], {"status": "approved"})
    assert late.status_code == 409 and "stopped" in late.json()["message"]
    assert server.services.approvals.pending_count() == 0
    sent = protocol_log(server, attempt["id"])
    assert any(m.get("request", {}).get("subtype") == "interrupt" for m in sent)


def test_an_agent_dying_with_an_open_question_fails_and_the_question_ends(
    server: LiveServer, tmp_path: Path
) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_variant(server, project, "ask abrupt", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Bash") as (conn, doc, status):
        doc, _ = read_to_finished(conn, doc)
    done = wait_processes(server, attempt["id"], 1)[0]
    assert done["status"] == "failed" and done["exit_code"] == 9
    assert status_of(doc, "Bash")["status"] == "denied"
    assert server.services.approvals.pending_count() == 0
    assert respond(server, status["approval_id"], process["id"], {"status": "approved"}).status_code == 409


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("silent", "ended without answering"),
        ("errorresult", "Claude Code reported an error: the model refused"),
    ],
)
def test_a_clean_exit_without_an_answer_is_never_completed(
    server: LiveServer, tmp_path: Path, prompt: str, message: str
) -> None:
    project = make_project(server, tmp_path)
    for variant in ("DEFAULT", "APPROVALS"):
        _task, attempt = start_variant(server, project, prompt, variant)
        done = wait_processes(server, attempt["id"], 1)[0]
        assert done["status"] == "failed" and done["exit_code"] == 0, (variant, done)
        with ws(server, f"/api/execution-processes/{done['id']}/normalized-logs/ws") as conn:
            doc, _ = read_to_finished(conn, {"entries": []})
        errors = [e["content"] for e in entries(doc) if e["entry_type"]["type"] == "error_message"]
        assert any(message in e for e in errors), (variant, errors)


def test_follow_up_resumes_the_session_with_a_fork(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task, attempt = start_variant(server, project, "first", "APPROVALS")
    first = wait_processes(server, attempt["id"], 1)[0]
    wait_task_status(server, task["id"], "inreview")
    body = {"prompt": "second", "variant": "APPROVALS"}
    follow_up = server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json=body)
    session = follow_up["executor_action"]["typ"]["session_id"]
    assert session.startswith("sess-")
    wait_processes(server, attempt["id"], 2)
    sent = protocol_log(server, attempt["id"])
    assert {"resumed": session, "forked": True} in sent
    # the follow-up opened the protocol again (initialize, mode) before its prompt
    initializes = [m for m in sent if m.get("request", {}).get("subtype") == "initialize"]
    assert len(initializes) == 2
    assert first["status"] == "completed"


def test_default_variant_writes_only_the_prompt_and_closes_stdin(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_variant(server, project, "plain", "DEFAULT")
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "completed"
    worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    assert not (worktree / "protocol.jsonl").exists()  # no control request was needed
    assert (worktree / "agent.txt").read_text() == "plain\n"
