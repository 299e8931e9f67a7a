"""Gemini CLI and Qwen Code over ACP (JSON-RPC 2.0 on stdio), through the real server, HTTP and WebSockets.

The agent is ``tests/agents/fake_acp.py``, a stand-in speaking ACP (local mode: host processes with the
stdin kept open).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import LiveServer
from tests.test_approvals import agent_process, entries, pending, respond, serve, status_of, tools
from tests.test_executions_local import branch_files, make_project, wait_processes, wait_task_status
from tests.test_streams import read_to_finished, ws

AGENT = Path(__file__).parent / "agents" / "fake_acp.py"
EXECUTORS = ["GEMINI", "QWEN_CODE"]


def use_fake_acp(server: LiveServer, *extra: str) -> None:
    override = " ".join([sys.executable, str(AGENT), *extra])
    model = {"model": "default"}
    executors = {
        executor: {
            "DEFAULT": {executor: {**(model if executor == "GEMINI" else {}), "yolo": True}},
            "APPROVALS": {executor: {**(model if executor == "GEMINI" else {}), "yolo": False}},
        }
        for executor in EXECUTORS
    }
    for variants in executors.values():
        for config in variants.values():
            for options in config.values():
                options["base_command_override"] = override
    server.ok("PUT", "/api/profiles", json={"executors": executors})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    for live in serve(tmp_path):
        use_fake_acp(live)
        yield live


def start_acp(
    server: LiveServer, project: dict[str, Any], title: str, executor: str, variant: str = "DEFAULT"
) -> tuple[dict[str, Any], dict[str, Any]]:
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": title})
    profile = {"executor": executor, "variant": variant}
    body = {"task_id": task["id"], "executor_profile_id": profile, "base_branch": "main"}
    return task, server.ok("POST", "/api/task-attempts", json=body)


def received(server: LiveServer, attempt_id: str) -> list[dict[str, Any]]:
    worktree = server.ok("GET", f"/api/task-attempts/{attempt_id}")["container_ref"]
    return [json.loads(line) for line in Path(worktree, "protocol.jsonl").read_text().splitlines()]


def conversation(server: LiveServer, process_id: str) -> dict[str, Any]:
    with ws(server, f"/api/execution-processes/{process_id}/normalized-logs/ws") as conn:
        doc, _ = read_to_finished(conn, {"entries": []})
    return doc  # type: ignore[no-any-return]


def errors(server: LiveServer, process_id: str) -> list[str]:
    doc = conversation(server, process_id)
    return [e["content"] for e in entries(doc) if e["entry_type"]["type"] == "error_message"]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_acp_turn_is_normalised_and_resumed_with_session_load(
    server: LiveServer, tmp_path: Path, executor: str
) -> None:
    project = make_project(server, tmp_path)
    task, attempt = start_acp(server, project, "write a file", executor)
    done = wait_processes(server, attempt["id"], 1)[0]
    assert done["status"] == "completed", done
    doc = conversation(server, done["id"])
    kinds = [(e["entry_type"]["type"], e["content"]) for e in entries(doc)]
    # the streamed chunks make one message (the last ones after the tool call make another)
    assert ("assistant_message", "Working on: write a file") in kinds
    assert ("thinking", "Thinking about it") in kinds and ("assistant_message", "Done.") in kinds
    command = next(t for t in tools(doc) if t["entry_type"]["action_type"]["action"] == "command_run")
    assert command["content"] == "echo > agent.txt" and command["entry_type"]["status"] == {
        "status": "success"
    }
    assert command["entry_type"]["action_type"]["result"]["output"] == "ok"
    plan = next(t for t in tools(doc) if t["entry_type"]["action_type"]["action"] == "todo_management")
    assert plan["entry_type"]["action_type"]["todos"][0]["content"] == "write the file"
    assert "agent.txt" in branch_files(project["git_repo_path"], attempt["branch"])
    sent = received(server, attempt["id"])
    assert [m.get("method") for m in sent] == ["initialize", "session/new", "session/prompt"]
    assert sent[0]["params"]["clientCapabilities"]["fs"] == {"readTextFile": False, "writeTextFile": False}
    worktree = server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    assert sent[1]["params"] == {"cwd": worktree, "mcpServers": []}
    assert sent[2]["params"]["prompt"] == [{"type": "text", "text": "write a file"}]

    wait_task_status(server, task["id"], "inreview")
    follow_up = server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "more"})
    session = follow_up["executor_action"]["typ"]["session_id"]
    assert session.startswith("acp-")
    second = wait_processes(server, attempt["id"], 2)[1]
    assert second["status"] == "completed"
    loads = [m for m in received(server, attempt["id"]) if m.get("method") == "session/load"]
    assert [m["params"]["sessionId"] for m in loads] == [session]
    texts = [e["content"] for e in entries(conversation(server, second["id"]))]
    assert "OLD HISTORY" not in texts  # the replayed conversation is not shown again
    assert "Working on: more" in texts
    assert "followup.txt" in branch_files(project["git_repo_path"], attempt["branch"])


def test_without_load_support_the_follow_up_says_it_starts_anew(server: LiveServer, tmp_path: Path) -> None:
    use_fake_acp(server, "--noload")
    project = make_project(server, tmp_path)
    task, attempt = start_acp(server, project, "first", "GEMINI")
    wait_processes(server, attempt["id"], 1)
    wait_task_status(server, task["id"], "inreview")
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "second"})
    second = wait_processes(server, attempt["id"], 2)[1]
    assert second["status"] == "completed"
    assert any("cannot resume a session" in e for e in errors(server, second["id"]))
    methods = [m.get("method") for m in received(server, attempt["id"])]
    assert "session/load" not in methods and methods.count("session/new") == 2


@pytest.mark.parametrize(("verdict", "written"), [("approved", True), ("denied", False)])
def test_permission_requests_ask_the_user_without_yolo(
    server: LiveServer, tmp_path: Path, verdict: str, written: bool
) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_acp(server, project, "ask first", "GEMINI", "APPROVALS")
    process = agent_process(server, attempt["id"])
    with pending(server, process["id"], "Write approved.txt") as (conn, doc, status):
        entry = next(t for t in tools(doc) if t["entry_type"]["tool_name"] == "Write approved.txt")
        assert entry["entry_type"]["action_type"]["action"] == "file_edit"
        assert respond(server, status["approval_id"], process["id"], {"status": verdict}).status_code == 200
        doc, _ = read_to_finished(conn, doc)
    expected = {"status": "success"} if written else {"status": "denied", "reason": None}
    assert status_of(doc, "Write approved.txt") == expected
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "completed"
    assert ("approved.txt" in branch_files(project["git_repo_path"], attempt["branch"])) is written
    answer = next(m for m in received(server, attempt["id"]) if m.get("id") == "perm-1")
    chosen = "allow" if written else "reject"
    assert answer["result"] == {"outcome": {"outcome": "selected", "optionId": chosen}}


def test_yolo_allows_by_itself(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_acp(server, project, "ask first", "QWEN_CODE")
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "completed"
    answer = next(m for m in received(server, attempt["id"]) if m.get("id") == "perm-1")
    assert answer["result"] == {"outcome": {"outcome": "selected", "optionId": "allow-all"}}
    assert server.services.approvals.pending_count() == 0


@pytest.mark.parametrize(
    ("title", "extra", "message"),
    [
        ("silent", (), "Gemini CLI ended without answering"),
        ("refuse", (), "Gemini CLI refused to answer the prompt"),
        ("anything", ("--autherror",), "Gemini CLI refused session/new: Authentication required"),
    ],
)
def test_a_turn_without_an_answer_is_never_completed(
    server: LiveServer, tmp_path: Path, title: str, extra: tuple[str, ...], message: str
) -> None:
    use_fake_acp(server, *extra)
    project = make_project(server, tmp_path)
    _task, attempt = start_acp(server, project, title, "GEMINI")
    done = wait_processes(server, attempt["id"], 1)[0]
    assert done["status"] == "failed" and done["exit_code"] == 0, done
    found = errors(server, done["id"])
    assert any(message in e for e in found), found


def test_stop_sends_session_cancel(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    _task, attempt = start_acp(server, project, "hang", "GEMINI")
    process = agent_process(server, attempt["id"])
    with ws(server, f"/api/execution-processes/{process['id']}/normalized-logs/ws") as conn:
        from tests.test_streams import follow

        doc = follow(
            conn,
            {"entries": []},
            lambda d: any(e["content"]["content"] == "Waiting..." for e in d["entries"]),
        )
        server.ok("POST", f"/api/execution-processes/{process['id']}/stop")
        doc, _ = read_to_finished(conn, doc)
    assert wait_processes(server, attempt["id"], 1)[0]["status"] == "killed"
    cancels = [m for m in received(server, attempt["id"]) if m.get("method") == "session/cancel"]
    assert len(cancels) == 1 and cancels[0]["params"]["sessionId"].startswith("acp-")
