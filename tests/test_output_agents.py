"""Amp, Cursor Agent, OpenCode and Copilot through the real server, with stand-in CLIs on the PATH.

The stand-ins (tests/agents/output_agents.py) are installed under each CLI's own command name in a bin
directory put first on the server's PATH, so the launcher's "installed CLI over npx" choice is exercised
for real, as are the normalisers (over the normalized-logs WebSocket) and the failure handling: a CLI that
is not signed in or cannot connect ends ``failed`` within seconds, and one that never answers is never
``completed``.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anyon.services.db.models import ExecutorSession
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import make_project, wait_processes
from tests.test_streams import read_to_finished, ws

STANDIN = Path(__file__).parent / "agents" / "output_agents.py"
COMMANDS = {"AMP": "amp", "CURSOR_AGENT": "cursor-agent", "OPENCODE": "opencode", "COPILOT": "copilot"}


def install_standins(bin_dir: Path, names: list[str]) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {sys.executable} {STANDIN} {name} "$@"\n')
        script.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    install_standins(path, list(COMMANDS.values()))
    monkeypatch.setenv("PATH", f"{path}:/usr/local/bin:/usr/bin:/bin")
    return path


@pytest.fixture
def server(tmp_path: Path, bin_dir: Path) -> Iterator[LiveServer]:
    config = make_config(tmp_path, executions={"stop_escalation_seconds": 0.5})
    with live_server(config) as live:
        yield live


def run(server: LiveServer, tmp_path: Path, executor: str, prompt: str) -> dict[str, Any]:
    project = make_project(server, tmp_path)
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": prompt})
    attempt = server.ok(
        "POST",
        "/api/task-attempts",
        json={"task_id": task["id"], "executor_profile_id": {"executor": executor}, "base_branch": "main"},
    )
    return wait_processes(server, attempt["id"], 1, timeout=30)[0]  # type: ignore[no-any-return]


def entries(server: LiveServer, process_id: str) -> list[dict[str, Any]]:
    with ws(server, f"/api/execution-processes/{process_id}/normalized-logs/ws") as conn:
        doc, _ = read_to_finished(conn, {"entries": []})
    return [e["content"] for e in doc["entries"]]


def kinds(log: list[dict[str, Any]]) -> list[str]:
    return [e["entry_type"]["type"] for e in log]


@pytest.mark.parametrize("executor", list(COMMANDS))
def test_installed_cli_runs_and_its_output_is_normalised(
    server: LiveServer, tmp_path: Path, bin_dir: Path, executor: str
) -> None:
    process = run(server, tmp_path, executor, "Add a file")
    assert process["status"] == "completed", process
    command = process["executor_action"]["command"]
    assert command["launcher"] == "installed"
    assert command["argv"][0] == str(bin_dir / COMMANDS[executor])
    log = entries(server, process["id"])
    assert log[0]["entry_type"]["type"] == "system_message"
    assert log[0]["content"] == f"Running `{command['display']}`"
    answers = [e["content"] for e in log if e["entry_type"]["type"] == "assistant_message"]
    assert answers and "did:" in answers[0], log
    assert "error_message" not in kinds(log), log
    with server.services.database.connection():
        session = ExecutorSession.get(ExecutorSession.execution_process == uuid.UUID(process["id"]))
    assert session.session_id
    if executor != "COPILOT":
        tools = [e for e in log if e["entry_type"]["type"] == "tool_use"]
        assert tools and tools[0]["entry_type"]["status"]["status"] == "success", log
        assert tools[0]["entry_type"]["action_type"]["action"] == "command_run"
    else:
        assert answers == ["Copilot did:\nAdd a file", "Second paragraph."]
        # Copilot's plain text names no session: the server chose it, and recorded it once Copilot answered
        argv = command["argv"]
        assert argv[argv.index("--session-id") + 1] == session.session_id == process["id"]

    # the historic replay (from the stored log) gives the same conversation
    def untimed(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**e, "timestamp": None} for e in log]

    assert untimed(entries(server, process["id"])) == untimed(log)


@pytest.mark.parametrize("executor", list(COMMANDS))
@pytest.mark.parametrize("marker", ["[login]", "[network]"])
def test_not_signed_in_or_offline_fails_fast_with_words_a_person_understands(
    server: LiveServer, tmp_path: Path, executor: str, marker: str
) -> None:
    started = time.monotonic()
    process = run(server, tmp_path, executor, f"Do it {marker}")
    took = time.monotonic() - started
    assert process["status"] == "failed", process
    assert took < 20, took  # the stand-ins would wait 120 s: the server ended them on their words
    errors = [e for e in entries(server, process["id"]) if e["entry_type"]["type"] == "error_message"]
    assert errors, process
    first = errors[0]
    if marker == "[login]":
        assert first["entry_type"]["error_type"] == {"type": "setup_required"}
        assert "not signed in" in first["content"] and "agent login of the web UI" in first["content"]
    else:
        assert first["entry_type"]["error_type"] == {"type": "other"}
        assert "cannot reach its model service" in first["content"]


@pytest.mark.parametrize("executor", list(COMMANDS))
def test_a_run_without_an_answer_is_never_completed(
    server: LiveServer, tmp_path: Path, executor: str
) -> None:
    process = run(server, tmp_path, executor, "Quiet [silent]")
    assert process["status"] == "failed", process
    assert process["exit_code"] == 0
    text = " ".join(e["content"] for e in entries(server, process["id"]))
    assert "without answering" in text or "printed nothing at all" in text


def test_launcher_npx_is_forced_and_a_registry_404_is_explained(tmp_path: Path, bin_dir: Path) -> None:
    npx = bin_dir / "npx"
    npx.write_text(
        "#!/bin/sh\necho 'npm notice New minor version of npm available!' >&2\n"
        'echo "npm error code E404" >&2\n'
        'echo "npm error 404 Not Found - GET https://registry.npmjs.org/x" >&2\n'
        "exit 1\n"
    )
    npx.chmod(0o755)
    config = make_config(tmp_path, launchers={"amp": "npx"})
    with live_server(config) as server:
        process = run(server, tmp_path, "AMP", "Anything")
        assert process["status"] == "failed"
        command = process["executor_action"]["command"]
        assert command["launcher"] == "npx"
        assert command["argv"][:3] == ["npx", "-y", "@sourcegraph/amp@0.0.1790142911-g7618fb"]
        log = entries(server, process["id"])
        notices = [e for e in log if "npm notice" in e["content"]]
        assert notices and notices[0]["entry_type"]["type"] == "system_message"  # not an error
        errors = [e for e in log if e["entry_type"]["type"] == "error_message"]
        assert "not installed where agents run and could not be fetched" in errors[0]["content"]


def test_launcher_installed_without_the_cli_fails_at_once_naming_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    config = make_config(tmp_path, launchers={"copilot": "installed"})
    with live_server(config) as server:
        process = run(server, tmp_path, "COPILOT", "Anything")
        assert process["status"] == "failed"
        log = entries(server, process["id"])
        setup = [e for e in log if e["entry_type"].get("error_type") == {"type": "setup_required"}]
        assert setup, log
        assert setup[0]["content"].startswith("copilot is not installed")
        assert "install it with npm install -g @github/copilot@1.0.102" in setup[0]["content"]


def test_the_command_shown_masks_secrets(server: LiveServer, tmp_path: Path) -> None:
    profiles = {
        "executors": {
            "OPENCODE": {
                "DEFAULT": {"OPENCODE": {"additional_params": ["--api-key", "sk-live-123", "--token=tok-9"]}}
            }
        }
    }
    server.ok("PUT", "/api/profiles", json=profiles)
    process = run(server, tmp_path, "OPENCODE", "Add a file")
    command = process["executor_action"]["command"]
    shown = " ".join(command["argv"]) + command["display"]
    assert "sk-live-123" not in shown and "tok-9" not in shown
    assert "--api-key ***" in command["display"] and "--token=***" in command["display"]
    stored = "".join(c.content for c in server.services.logstore.read(process["id"]))
    assert "sk-live-123" not in stored and "tok-9" not in stored
    assert "sk-live-123" not in str(entries(server, process["id"]))


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        ({"executor": "NOPE"}, "unknown executor 'NOPE'"),
        ({"executor": "AMP", "variant": "TURBO"}, "unknown variant 'TURBO' for executor AMP"),
    ],
)
def test_unknown_executors_and_variants_are_clear_errors(
    server: LiveServer, tmp_path: Path, profile: dict[str, str], words: str
) -> None:
    project = make_project(server, tmp_path)
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "x"})
    body = {"task_id": task["id"], "executor_profile_id": profile, "base_branch": "main"}
    response = server.post("/api/task-attempts", json=body)
    assert 400 <= response.status_code < 500 or response.json()["success"] is False, response.text
    assert words in response.json()["message"]
    assert server.ok("GET", f"/api/task-attempts?task_id={task['id']}") == []


def test_run_agent_setup_runs_cursors_helper_then_its_last_request(
    server: LiveServer, tmp_path: Path
) -> None:
    first = run(server, tmp_path, "CURSOR_AGENT", "Add a file")
    attempt_id = first["task_attempt_id"]
    body = {"executor_profile_id": {"executor": "CURSOR_AGENT"}}
    assert server.ok("POST", f"/api/task-attempts/{attempt_id}/run-agent-setup", json=body) == {}
    processes = wait_processes(server, attempt_id, 3, timeout=30)
    assert [p["run_reason"] for p in processes] == ["codingagent", "setupscript", "codingagent"]
    assert [p["status"] for p in processes] == ["completed"] * 3
    setup_log = "".join(c.content for c in server.services.logstore.read(processes[1]["id"]))
    assert "Cursor Agent is already installed" in setup_log
    assert processes[2]["executor_action"]["typ"] == first["executor_action"]["typ"]
    # other agents have no setup helper: a clear error, nothing started
    other = {"executor_profile_id": {"executor": "AMP"}}
    refused = server.post(f"/api/task-attempts/{attempt_id}/run-agent-setup", json=other)
    assert "only available for CURSOR_AGENT" in refused.json()["message"]
    assert len(server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt_id}")) == 3


@pytest.mark.parametrize(
    ("executor", "resume"),
    [
        ("AMP", "continue T-amp-1"),
        ("CURSOR_AGENT", "--resume cursor-sess-1"),
        ("OPENCODE", "--session ses_standin1"),
        ("COPILOT", "--resume {first}"),
    ],
)
def test_a_follow_up_resumes_the_agents_session(
    server: LiveServer, tmp_path: Path, executor: str, resume: str
) -> None:
    first = run(server, tmp_path, executor, "Add a file")
    attempt_id = first["task_attempt_id"]
    # sent as soon as "completed" shows: the server waits for the first run's close itself
    sent = server.post(f"/api/task-attempts/{attempt_id}/follow-up", json={"prompt": "More"})
    assert sent.json()["success"] is True, sent.text
    second = wait_processes(server, attempt_id, 2, timeout=30)[1]
    assert second["status"] == "completed", second
    assert second["executor_action"]["typ"]["type"] == "CodingAgentFollowUpRequest"
    answers = [
        e["content"] for e in entries(server, second["id"]) if e["entry_type"]["type"] == "assistant_message"
    ]
    assert answers and f"(resumed: {resume.format(first=first['id'])})" in answers[-1], answers
    assert "--session-id" not in second["executor_action"]["command"]["argv"]  # a resume, not a new session
