"""Faults of the execution engine: an agent that floods its output, one that outgrows its memory limit,
and a container runtime that cannot be reached — each ends cleanly with a clear log and nothing left."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from anyon.config.model import AnyonConfig
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import make_project, start, use_fake_agent, wait_processes, wait_task_status

FLOOD_MB = 100


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_an_agent_printing_100_mb_keeps_server_memory_bounded(tmp_path: Path) -> None:
    # with the log cap off everything is stored: the in-memory window alone keeps memory bounded
    config = make_config(tmp_path, executions={"log_memory_bytes": 4 * 1024**2, "log_cap_bytes": 0})
    # the flood, then the agent's answer (a run without one is not completed)
    answer = '{"type":"assistant","message":{"content":[{"type":"text","text":"flooded"}]}}'
    flood = (
        f"import sys\nline = 'y' * 1023 + '\\n'\nfor _ in range({FLOOD_MB} * 1024): sys.stdout.write(line)\n"
        f"print({answer!r})\n"
    )
    script = tmp_path / "flood.py"
    script.write_text(flood)
    with live_server(config) as server:
        use_fake_agent(server, f"{sys.executable} {script}")
        project = make_project(server, tmp_path)
        before = _rss_mb()
        peak = before
        _task, attempt = start(server, project, "flood")
        deadline = time.monotonic() + 240
        while True:
            peak = max(peak, _rss_mb())
            processes = server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")
            if processes and processes[0]["status"] != "running":
                break
            assert time.monotonic() < deadline, "flooding agent did not finish"
            time.sleep(0.2)
        assert processes[0]["status"] == "completed"
        stored = server.services.logstore.total_bytes(processes[0]["id"])
        assert stored >= FLOOD_MB * 1024**2 * 0.99
        growth = peak - before
        print(f"server RSS growth while the agent printed {FLOOD_MB} MB: {growth:.0f} MB")
        assert growth < 150, f"server memory grew by {growth:.0f} MB for {FLOOD_MB} MB of output"


def _cloud_config(tmp_path: Path, **docker: object) -> AnyonConfig:
    return make_config(
        tmp_path,
        mode="cloud",
        docker={"user": f"{os.getuid()}:{os.getgid()}", "network": "none", **docker},
    )


def _failed_start(server: LiveServer, tmp_path: Path) -> tuple[dict[str, Any], str]:
    project = make_project(server, tmp_path)
    task, attempt = start(server, project, "anything")
    process = wait_processes(server, attempt["id"], 1)[0]
    assert process["status"] == "failed" and process["run_reason"] == "codingagent"
    wait_task_status(server, task["id"], "inreview")
    logs = "".join(c.content for c in server.services.logstore.read(process["id"]))
    return attempt, logs


def test_unreachable_docker_fails_the_start_clearly_and_keeps_serving(tmp_path: Path) -> None:
    config = _cloud_config(tmp_path, host=f"unix://{tmp_path}/no-docker.sock")
    with live_server(config) as server:
        _attempt, logs = _failed_start(server, tmp_path)
        assert "Failed to start execution" in logs and "Docker" in logs
        assert server.ok("GET", "/api/health") == "OK"
        assert server.ok("GET", "/api/projects")


def test_missing_image_names_the_image(tmp_path: Path) -> None:
    from tests.test_executions_cloud import require_test_image

    require_test_image()  # a working engine, so the failure is the image alone
    config = _cloud_config(tmp_path, image="anyon-no-such-image:latest")
    with live_server(config) as server:
        _attempt, logs = _failed_start(server, tmp_path)
        assert "anyon-no-such-image:latest" in logs
