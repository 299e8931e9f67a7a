"""Faults of the execution engine: an agent that floods its output, one that outgrows its memory limit,
and a container runtime that cannot be reached — each ends cleanly with a clear log and nothing left."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from tests.conftest import make_config
from tests.live_server import live_server
from tests.test_executions_local import make_project, start, use_fake_agent

FLOOD_MB = 100


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_an_agent_printing_100_mb_keeps_server_memory_bounded(tmp_path: Path) -> None:
    config = make_config(tmp_path, executions={"log_memory_bytes": 4 * 1024**2})
    flood = (
        f"import sys\nline = 'y' * 1023 + '\\n'\nfor _ in range({FLOOD_MB} * 1024): sys.stdout.write(line)\n"
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
