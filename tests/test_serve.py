"""`anyon serve` as ops run it: a subprocess on loopback that shuts down cleanly on SIGTERM, stopping what
it started, even with an endless SSE stream open; the next start finds consistent statuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

AGENT = Path(__file__).parent / "agents" / "fake_claude.py"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYON_") and k not in ("HOST", "PORT")}
    env.update(
        HOME=str(tmp_path / "home"),
        ANYON_DATA_DIR=str(tmp_path / "data"),
        ANYON_WORKTREE_DIR=str(tmp_path / "worktrees"),
        ANYON_WORKSPACE_DIR=str(tmp_path / "workspace"),
        ANYON_TEMP_DIR=str(tmp_path / "tmp"),
        ANYON_SETTINGS_FILE=str(tmp_path / "settings.toml"),
        ANYON_LOGGING__FORMAT="json",
    )
    (tmp_path / "settings.toml").write_text("[executions]\nstop_escalation_seconds = 0.5\n")
    return env


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp_path / "tmp" / "anyon.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "anyon", "serve", "--port", "0"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        if port_file.exists() and port_file.read_text().strip():
            base = f"http://127.0.0.1:{port_file.read_text().strip()}"
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)


def _ok(response: httpx.Response) -> Any:
    body = response.json()
    assert body["success"] is True, body
    return body["data"]


def test_sigterm_stops_running_attempts_and_restart_is_consistent(tmp_path: Path) -> None:
    proc, base = _start(tmp_path)
    client = httpx.Client(base_url=base, timeout=10)
    profiles = {
        "executors": {
            "CLAUDE_CODE": {
                "DEFAULT": {"CLAUDE_CODE": {"base_command_override": f"{sys.executable} {AGENT}"}}
            }
        }
    }
    _ok(client.put("/api/profiles", json=profiles))
    project = _ok(
        client.post("/api/projects", json={"name": "p", "git_repo_path": "", "use_existing_repo": False})
    )
    task = _ok(client.post("/api/tasks", json={"project_id": project["id"], "title": "sleep stubborn"}))
    attempt = _ok(
        client.post(
            "/api/task-attempts",
            json={
                "task_id": task["id"],
                "executor_profile_id": {"executor": "CLAUDE_CODE"},
                "base_branch": "main",
            },
        )
    )
    deadline = time.monotonic() + 20
    while not _ok(client.get(f"/api/execution-processes?task_attempt_id={attempt['id']}")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # the agent is up and ignoring INT/TERM
    worktree = _ok(client.get(f"/api/task-attempts/{attempt['id']}"))["container_ref"]

    sse_open = threading.Event()

    def follow_events() -> None:
        try:
            with httpx.stream("GET", f"{base}/api/events", timeout=30) as response:
                sse_open.set()
                for _ in response.iter_raw():
                    pass
        except httpx.HTTPError:
            pass

    threading.Thread(target=follow_events, daemon=True).start()
    assert sse_open.wait(10)

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    took = time.monotonic() - started
    assert took < 8, f"shutdown took {took:.1f} s (an open SSE stream must not hold it)"
    logs = proc.stderr.read().decode() if proc.stderr else ""
    assert "Traceback" not in logs
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cwd_is(p, worktree)]
    assert leftovers == [], "an agent outlived the server"

    proc2, base2 = _start(tmp_path)
    try:
        client2 = httpx.Client(base_url=base2, timeout=10)
        processes = _ok(client2.get(f"/api/execution-processes?task_attempt_id={attempt['id']}"))
        assert [p["status"] for p in processes] == ["killed"]
        assert _ok(client2.get(f"/api/tasks/{task['id']}"))["status"] == "inreview"
    finally:
        proc2.send_signal(signal.SIGTERM)
        proc2.wait(timeout=30)


def _cwd_is(proc: Path, worktree: str) -> bool:
    try:
        return str((proc / "cwd").resolve()) == worktree
    except OSError:
        return False


def test_start_up_failure_is_one_clear_error(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["ANYON_DATABASE__URL"] = "postgresql://nobody@127.0.0.1:1/none"
    result = subprocess.run(
        [sys.executable, "-m", "anyon", "serve", "--port", "0"], env=env, capture_output=True, timeout=60
    )
    assert result.returncode != 0
    assert b"Traceback" not in result.stderr and b"start-up failed" in result.stderr


def test_every_failed_start_up_check_is_named_with_its_fix(tmp_path: Path) -> None:
    env = _env(tmp_path)
    token = tmp_path / "api-token"
    token.write_text("a-token-long-enough\n")
    token.chmod(0o644)  # readable by every account: refused
    env.update(
        ANYON_DEPLOYMENT_MODE="cloud",
        ANYON_BASE_DIR=str(tmp_path / "base"),
        ANYON_DOCKER__HOST=f"unix://{tmp_path}/no-docker.sock",
        ANYON_DOCKER_USER="no-such-user-xyz",
        ANYON_API_TOKEN_FILE=str(token),
        ANYON_SERVER__PUBLIC_HOSTS="anyon.example.com",
        HOST="0.0.0.0",
    )
    result = subprocess.run(
        [sys.executable, "-m", "anyon", "serve", "--port", "0"], env=env, capture_output=True, timeout=120
    )
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "Traceback" not in err
    assert "3 start-up checks failed" in err, err
    for name in ("api token", "docker socket", "docker.user"):
        assert f"  - {name}: " in err, name
    assert err.count("    fix: ") == 3
    assert "chmod 600" in err and "systemctl enable --now docker" in err and "ANYON_DOCKER_USER" in err
