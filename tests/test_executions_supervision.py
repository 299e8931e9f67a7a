"""Process supervision in local mode, through the real server: a silent agent fails after the start
timeout, a long one after the maximum run time, an agent that exits 0 without a word gets an error
entry, a command that cannot fork is named, and a queued execution says so and starts its clock late.

The agents are stand-ins run with this interpreter; every timed-out process must be gone afterwards.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_cloud import cloud as cloud  # the cloud-mode server fixture
from tests.test_executions_local import (
    make_project,
    start,
    use_fake_agent,
    wait_processes,
    wait_task_status,
)
from tests.test_streams import read_to_finished, ws

SILENT = "import time\ntime.sleep(600)\n"
QUIET_SUCCESS = "import sys\nsys.stdin.read()\n"
CHATTY_THEN_STUCK = "import sys, time\nprint('hello', flush=True)\ntime.sleep(600)\n"
NO_FORK = (
    "import sys\nprint('working', flush=True)\n"
    "sys.stderr.write('/bin/sh: fork: retry: Resource temporarily unavailable\\n')\n"
)


def _agent(server: LiveServer, tmp_path: Path, name: str, source: str) -> Path:
    script = tmp_path / f"{name}.py"
    script.write_text(source)
    use_fake_agent(server, f"{sys.executable} {script}")
    return script


def _pids_running(script: Path) -> list[int]:
    """Host processes whose command line names ``script``: what a stop must leave at zero."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(script).encode() in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def _wait_gone(script: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _pids_running(script):
        assert time.monotonic() < deadline, f"{script.name} still runs: {_pids_running(script)}"
        time.sleep(0.05)


def _raw(server: LiveServer, process_id: str) -> str:
    return "".join(c.content for c in server.services.logstore.read(process_id))


def _entries(server: LiveServer, process_id: str) -> list[dict[str, Any]]:
    with ws(server, f"/api/execution-processes/{process_id}/normalized-logs/ws") as conn:
        doc, _ = read_to_finished(conn, {"entries": []})
    return [e["content"] for e in doc["entries"]]


def _errors(server: LiveServer, process_id: str) -> list[str]:
    return [e["content"] for e in _entries(server, process_id) if e["entry_type"]["type"] == "error_message"]


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    config = make_config(tmp_path, executions={"stop_escalation_seconds": 0.5, "start_timeout_seconds": 1.5})
    with live_server(config) as live:
        yield live


def test_a_silent_agent_fails_after_the_start_timeout_and_is_gone(server: LiveServer, tmp_path: Path) -> None:
    script = _agent(server, tmp_path, "silent", SILENT)
    project = make_project(server, tmp_path, cleanup_script="echo never > cleanup.txt")
    task, attempt = start(server, project, "say nothing")
    began = time.monotonic()
    process = wait_processes(server, attempt["id"], 1, timeout=20)[0]
    took = time.monotonic() - began
    assert process["status"] == "failed" and process["run_reason"] == "codingagent"
    assert 1.0 <= took < 10, took
    print(f"a silent agent failed {took:.1f} s after its start (start timeout 1.5 s)")
    raw = _raw(server, process["id"])
    assert "printed nothing in the 1.5 s" in raw and "executions.start_timeout_seconds" in raw
    for cause in ("no network", "registry", "login"):
        assert cause in raw
    errors = _errors(server, process["id"])
    assert any("start_timeout_seconds" in e and "login" in e for e in errors), errors
    _wait_gone(script)
    wait_task_status(server, task["id"], "inreview")
    # a failed agent runs no cleanup script
    assert len(server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")) == 1


def test_an_agent_that_prints_is_not_timed_out(server: LiveServer, tmp_path: Path) -> None:
    script = _agent(server, tmp_path, "chatty", CHATTY_THEN_STUCK)
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "talk")
    process = wait_processes(server, attempt["id"], 1, done=False)[0]
    time.sleep(3)  # twice the start timeout
    assert server.ok("GET", f"/api/execution-processes/{process['id']}")["status"] == "running"
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/stop")
    assert server.ok("GET", f"/api/execution-processes/{process['id']}")["status"] == "killed"
    _wait_gone(script)
    assert "start_timeout_seconds" not in _raw(server, process["id"])


def test_the_maximum_run_time_fails_a_busy_agent_and_its_script(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        executions={"stop_escalation_seconds": 0.5, "start_timeout_seconds": 0, "max_run_seconds": 1.5},
    )
    with live_server(config) as server:
        script = _agent(server, tmp_path, "stuck", CHATTY_THEN_STUCK)
        project = make_project(server, tmp_path)
        task, attempt = start(server, project, "long job")
        process = wait_processes(server, attempt["id"], 1, timeout=20)[0]
        assert process["status"] == "failed"
        assert "ran longer than the 1.5 s allowed" in _raw(server, process["id"])
        assert any("max_run_seconds" in e for e in _errors(server, process["id"]))
        _wait_gone(script)
        wait_task_status(server, task["id"], "inreview")

        # a setup script is bounded too; the dev server is not
        marker = tmp_path / "dev-still-running"
        project2 = make_project(
            server,
            tmp_path / "p2",
            setup_script="sleep 600",
            dev_script=f"sleep 2.5; touch {marker}; sleep 600",
        )
        _task2, attempt2 = start(server, project2, "with setup")
        setup = wait_processes(server, attempt2["id"], 1, timeout=20)[0]
        assert setup["run_reason"] == "setupscript" and setup["status"] == "failed"
        assert "The script ran longer" in _raw(server, setup["id"])
        server.ok("POST", f"/api/task-attempts/{attempt2['id']}/start-dev-server")
        deadline = time.monotonic() + 15
        while not marker.exists():
            assert time.monotonic() < deadline, "the dev server was stopped by the maximum run time"
            time.sleep(0.05)
        dev = next(
            p
            for p in server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt2['id']}")
            if p["run_reason"] == "devserver"
        )
        assert dev["status"] == "running"
        server.ok("POST", f"/api/execution-processes/{dev['id']}/stop")


def test_an_agent_exiting_0_without_output_gets_an_error_entry(server: LiveServer, tmp_path: Path) -> None:
    _agent(server, tmp_path, "quiet", QUIET_SUCCESS)
    project = make_project(server, tmp_path)
    task, attempt = start(server, project, "do it quietly")
    process = wait_processes(server, attempt["id"], 1)[0]
    # exit 0 without a word is no success: the agent answered nothing (the log says why)
    assert process["status"] == "failed" and process["exit_code"] == 0
    errors = _errors(server, process["id"])
    assert len(errors) == 1 and "printed nothing at all" in errors[0], errors
    wait_task_status(server, task["id"], "inreview")


def test_an_agent_with_output_gets_no_such_entry(server: LiveServer, tmp_path: Path) -> None:
    use_fake_agent(server)
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "write a file")
    process = wait_processes(server, attempt["id"], 1)[0]
    assert process["status"] == "completed"
    assert _errors(server, process["id"]) == []


def test_a_refused_fork_is_named(server: LiveServer, tmp_path: Path) -> None:
    _agent(server, tmp_path, "nofork", NO_FORK)
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "fork a lot")
    process = wait_processes(server, attempt["id"], 1)[0]
    raw = _raw(server, process["id"])
    assert raw.count("The process limit was reached") == 1
    assert any("docker.pids_limit" in e for e in _errors(server, process["id"]))


def test_a_queued_execution_says_so_and_starts_its_clock_when_it_runs(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, executions={"max_concurrent": 1, "stop_escalation_seconds": 0.5, "start_timeout_seconds": 0}
    )
    with live_server(config) as server:
        use_fake_agent(server)
        project = make_project(server, tmp_path)
        _, first = start(server, project, "sleep long")
        first_process = wait_processes(server, first["id"], 1, done=False)[0]
        deadline = time.monotonic() + 10
        while server.ok("GET", "/api/executions/status")["running"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _, second = start(server, project, "quick")
        queued = wait_processes(server, second["id"], 1, done=False)[0]
        while server.ok("GET", "/api/executions/status")["queued"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        waiting = _raw(server, queued["id"])
        assert "Waiting for a free execution slot, position 1 in the queue" in waiting, waiting
        assert "executions.max_concurrent = 1" in waiting
        server.ok("POST", f"/api/task-attempts/{first['id']}/stop")
        ended = server.ok("GET", f"/api/execution-processes/{first_process['id']}")
        done = wait_processes(server, second["id"], 1)[0]
        assert done["status"] == "completed"
        assert _ts(done["started_at"]) >= _ts(ended["completed_at"]), (done, ended)
        assert _ts(done["started_at"]) > _ts(done["created_at"])
        raw = _raw(server, done["id"])
        assert "A slot is free after" in raw and raw.index("Waiting") < raw.index("A slot is free")
        assert "Working on: quick" in raw


@pytest.mark.docker
def test_a_child_oom_kill_and_a_refused_fork_are_named_in_cloud_mode(
    cloud: LiveServer,
    tmp_path: Path,
) -> None:
    """The script's own exit is 0: only the container's cgroup counters tell what happened inside."""
    script = (
        # a child outgrows the 256 MiB limit; then a subshell forks past the 128 pids, its errors hidden
        "(head -c 800m /dev/zero | tail > /dev/null); "
        "(for i in $(seq 200); do sleep 2 & done) 2>/dev/null; "
        "sleep 3; echo survived"
    )
    body = {"name": "faults", "git_repo_path": str(tmp_path / "faults"), "use_existing_repo": False}
    project = cloud.ok("POST", "/api/projects", json={**body, "setup_script": script})
    _task, attempt = start(cloud, project, "after the setup")
    setup = wait_processes(cloud, attempt["id"], 1, timeout=120, done=False)[0]
    deadline = time.monotonic() + 120
    while (setup := cloud.ok("GET", f"/api/execution-processes/{setup['id']}"))["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert setup["run_reason"] == "setupscript"
    assert setup["status"] == "completed" and setup["exit_code"] == 0, setup
    raw = _raw(cloud, setup["id"])
    assert "survived" in raw
    assert "killed for exceeding the memory limit (docker.memory)" in raw, raw
    assert raw.count("The process limit was reached") == 1, raw
