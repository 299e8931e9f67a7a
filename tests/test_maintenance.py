"""Background upkeep: start-up orphan sweep (and its dry run) and worktree expiry, on real worktrees."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path

from tests.conftest import make_config
from tests.live_server import live_server
from tests.test_executions_local import make_project, start, use_fake_agent, wait_processes


def _wait_gone(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while path.exists():
        assert time.monotonic() < deadline, f"{path} was not removed"
        time.sleep(0.05)


def test_startup_sweep_removes_only_unowned_folders(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    base = Path(config.paths.worktree_dir)
    with live_server(config) as server:
        use_fake_agent(server)
        project = make_project(server, tmp_path)
        _task, attempt = start(server, project, "noop")
        wait_processes(server, attempt["id"], 1)
        owned = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (base / "orphan-dir").mkdir()
    os.symlink(outside, base / "orphan-link")
    with live_server(config):
        _wait_gone(base / "orphan-dir")
        _wait_gone(base / "orphan-link")
        assert owned.is_dir()
        assert (outside / "keep.txt").read_text() == "keep"


def test_dry_run_only_logs(tmp_path: Path) -> None:
    config = make_config(tmp_path, retention={"orphan_sweep_dry_run": True})
    base = Path(config.paths.worktree_dir)
    (base / "orphan-dir").mkdir(parents=True)
    with live_server(config) as server:
        assert server.services.maintenance.sweep_orphans() == [str(base / "orphan-dir")]
        assert (base / "orphan-dir").is_dir()


def test_expiry_removes_idle_worktrees_and_marks_them(tmp_path: Path) -> None:
    config = make_config(tmp_path, retention={"worktree_hours": 1.0})
    with live_server(config) as server:
        use_fake_agent(server)
        project = make_project(server, tmp_path)
        _task, attempt = start(server, project, "noop")
        wait_processes(server, attempt["id"], 1)
        worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
        maintenance = server.services.maintenance
        assert asyncio.run(maintenance.expire_once()) == []
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        assert asyncio.run(maintenance.expire_once(now=later)) == [str(worktree)]
        assert not worktree.exists()
        assert server.ok("GET", f"/api/task-attempts/{attempt['id']}")["worktree_deleted"] is True
