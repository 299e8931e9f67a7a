"""Ready worktrees (local mode): a checkout made ahead, taken by exactly one attempt, never stale, cleaned up.

Real servers on 127.0.0.1, real repositories (pygit2 and the git CLI), the stand-in agent. What could go
wrong and is checked: an attempt starting from a checkout of an old commit after the base branch moved;
two attempts sharing one checkout; pool branches showing in the branch list; checkouts left behind after
the project is deleted, after it goes idle, or after shutdown.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import make_project, start, use_fake_agent, wait_processes


def _config(tmp_path: Path, **executions: Any) -> Any:
    return make_config(
        tmp_path,
        executions={"stop_escalation_seconds": 0.5, "ready_worktrees": 1, **executions},
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(_config(tmp_path)) as live:
        use_fake_agent(live)
        yield live


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ready_of(server: LiveServer, project: dict[str, Any]) -> list[Any]:
    pool = server.services.executions.ready_worktrees
    assert pool is not None
    return pool.ready(project["id"])  # type: ignore[no-any-return]


def open_board(server: LiveServer, project: dict[str, Any]) -> Any:
    """Open the board (what the UI does first: marks the project active) and wait for quiet: every
    activity mark sent so far has been handled and the ready worktree is made."""
    server.ok("GET", f"/api/projects/{project['id']}")
    pool = server.services.executions.ready_worktrees
    for _ in range(2):
        wait_until(lambda: ready_of(server, project) and not pool.filling, "a ready worktree")
        time.sleep(0.3)  # a mark still on its way to the pool would start another fill
    return ready_of(server, project)[0]


def commit_on_main(repo_path: str, name: str) -> str:
    repo = pygit2.Repository(repo_path)
    blob = repo.create_blob(name.encode())
    builder = repo.TreeBuilder(repo.head.peel(pygit2.Commit).tree)
    builder.insert(name, blob, pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature("t", "t@example.com")
    oid = repo.create_commit("refs/heads/main", sig, sig, name, builder.write(), [repo.head.target])
    return str(oid)


def test_an_attempt_takes_the_ready_worktree_then_one_is_made(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    ready = open_board(server, project)
    assert ready.folder.endswith("-warm") and os.path.isdir(ready.folder)
    repo = pygit2.Repository(project["git_repo_path"])
    assert [b for b in repo.branches.local] == ["main"]  # nothing to see before an attempt takes it
    branches = server.ok("GET", f"/api/projects/{project['id']}/branches")
    assert [b["name"] for b in branches] == ["main"]

    _, attempt = start(server, project, "first")
    assert attempt["id"] == str(ready.attempt_id)
    wait_processes(server, attempt["id"], 1)
    attempt = server.ok("GET", f"/api/task-attempts/{attempt['id']}")
    assert attempt["container_ref"] == ready.folder
    checkout = pygit2.Repository(ready.folder)
    assert checkout.head.name == f"refs/heads/{attempt['branch']}"
    assert ready.base_oid == str(repo.head.target)  # the attempt's branch grew from the base's tip
    assert str(repo.merge_base(checkout.head.target, repo.head.target)) == ready.base_oid
    # the attempt printed: the project gets a fresh ready worktree, for the next attempt only
    again = wait_until(lambda: ready_of(server, project), "a second ready worktree")[0]
    assert again.folder != ready.folder and again.attempt_id != ready.attempt_id
    _, second = start(server, project, "second")
    assert second["id"] == str(again.attempt_id) and second["branch"] != attempt["branch"]
    wait_processes(server, second["id"], 1)


def test_a_moved_base_branch_is_never_started_from_an_old_commit(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "after the move"})
    ready = open_board(server, project)
    moved_to = commit_on_main(project["git_repo_path"], "new-file.txt")  # nothing tells the server
    assert ready.base_oid != moved_to
    body = {"task_id": task["id"], "executor_profile_id": {"executor": "CLAUDE_CODE"}, "base_branch": "main"}
    attempt = server.ok("POST", "/api/task-attempts", json=body)
    assert attempt["id"] == str(ready.attempt_id)  # claimed, then found stale when the branch is made
    wait_processes(server, attempt["id"], 1)
    attempt = server.ok("GET", f"/api/task-attempts/{attempt['id']}")
    worktree = attempt["container_ref"]
    assert worktree != ready.folder and not os.path.exists(ready.folder)  # the stale one is gone
    repo = pygit2.Repository(project["git_repo_path"])
    assert str(repo.merge_base(pygit2.Repository(worktree).head.target, moved_to)) == moved_to
    assert os.path.isfile(os.path.join(worktree, "new-file.txt"))
    assert os.path.basename(ready.folder) not in repo.list_worktrees()
    # the next fill notices the move before any attempt asks
    server.ok("GET", f"/api/projects/{project['id']}")
    fresh = wait_until(lambda: ready_of(server, project), "a fresh ready worktree")[0]
    assert fresh.base_oid == str(repo.head.target)


def test_another_base_branch_does_not_take_it(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    ready = open_board(server, project)
    repo = pygit2.Repository(project["git_repo_path"])
    repo.branches.local.create("other", repo.head.peel(pygit2.Commit))
    _, attempt = start(server, project, "on other", base="other")
    assert attempt["id"] != str(ready.attempt_id)
    wait_processes(server, attempt["id"], 1)
    assert ready_of(server, project)[0] == ready and os.path.isdir(ready.folder)


def test_deleted_project_idle_project_and_shutdown_leave_nothing(tmp_path: Path) -> None:
    worktree_dir = tmp_path / "anyon" / "worktrees"
    with live_server(_config(tmp_path, ready_worktree_idle_seconds=1.0)) as server:
        use_fake_agent(server)
        deleted = make_project(server, tmp_path)
        ready = open_board(server, deleted)
        server.ok("DELETE", f"/api/projects/{deleted['id']}")
        assert not os.path.exists(ready.folder)
        idle_body = {"name": "idle", "git_repo_path": str(tmp_path / "idle"), "use_existing_repo": False}
        idle = server.ok("POST", "/api/projects", json=idle_body)
        ready = open_board(server, idle)
        wait_until(lambda: not os.path.exists(ready.folder), "the idle project's ready worktree to go", 10)
        kept_body = {"name": "kept", "git_repo_path": str(tmp_path / "kept"), "use_existing_repo": False}
        kept = server.ok("POST", "/api/projects", json=kept_body)
        ready = open_board(server, kept)
    assert not os.path.exists(ready.folder)
    assert [p for p in worktree_dir.iterdir()] == []
    for name in ("idle", "kept"):
        repo = pygit2.Repository(str(tmp_path / name))
        assert repo.list_worktrees() == [] and list(repo.branches.local) == ["main"]


def test_off_by_default(tmp_path: Path) -> None:
    with live_server(make_config(tmp_path)) as server:
        assert server.services.executions.ready_worktrees is None


def test_an_attempt_posted_while_its_checkout_is_made_takes_that_one(
    server: LiveServer, tmp_path: Path
) -> None:
    """Right after the project's creation the checkout made ahead is under way: the attempt waits for
    it instead of making a second one beside it."""
    repo_path = tmp_path / "big"
    repo = pygit2.init_repository(str(repo_path), initial_head="main")
    for i in range(3000):
        (repo_path / f"f{i}.txt").write_text(f"{i}\n" * 20)
    repo.index.add_all()
    sig = pygit2.Signature("t", "t@example.com")
    repo.create_commit("HEAD", sig, sig, "many files", repo.index.write_tree(), [])
    body = {"name": "big", "git_repo_path": str(repo_path), "use_existing_repo": True}
    project = server.ok("POST", "/api/projects", json=body)
    pool = server.services.executions.ready_worktrees
    pending = wait_until(
        lambda: (p := pool._pools.get(project["id"])) is not None and p.pending, "a checkout under way"
    )
    _, attempt = start(server, project, "right away")
    assert attempt["id"] == str(pending.attempt_id)
    wait_processes(server, attempt["id"], 1)
    assert server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"] == pending.folder
    assert pygit2.Repository(pending.folder).head.name == f"refs/heads/{attempt['branch']}"
