"""Git routes of projects and attempts through the HTTP API, on real repositories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import make_project, start, use_fake_agent, wait_processes, wait_task_status


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path)) as live:
        use_fake_agent(live)
        yield live


def commit_file(repo_path: str, name: str, content: str, message: str) -> None:
    repo = pygit2.Repository(repo_path)
    (Path(repo_path) / name).write_text(content)
    repo.index.add(name)
    repo.index.write()
    tree = repo.index.write_tree()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, message, tree, [repo.head.target])


def finished_attempt(server: LiveServer, tmp_path: Path, title: str = "Add file") -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    project = make_project(server, tmp_path)
    task, attempt = start(server, project, title)
    wait_processes(server, attempt["id"], 1)
    wait_task_status(server, task["id"], "inreview")
    return project, task, attempt


def test_branches_and_status_then_squash_merge(server: LiveServer, tmp_path: Path) -> None:
    project, task, attempt = finished_attempt(server, tmp_path)
    branches = server.ok("GET", f"/api/projects/{project['id']}/branches")
    names = {b["name"]: b for b in branches}
    assert names["main"]["is_current"] is True and attempt["branch"] in names
    status = server.ok("GET", f"/api/task-attempts/{attempt['id']}/branch-status")
    assert status["commits_ahead"] == 1 and status["commits_behind"] == 0
    assert status["merges"] == [] and status["conflicted_files"] == [] and status["conflict_op"] is None
    assert status["target_branch_name"] == "main" and status["is_rebase_in_progress"] is False
    assert server.ok("POST", f"/api/task-attempts/{attempt['id']}/merge") is None
    repo = pygit2.Repository(project["git_repo_path"])
    head = repo.head.peel(pygit2.Commit)
    assert head.message.startswith(f"Add file (anyon {task['id'].replace('-', '')[:8]})")
    assert "agent.txt" in {e.name for e in head.tree}
    assert server.ok("GET", f"/api/tasks/{task['id']}")["status"] == "done"
    merges = server.ok("GET", f"/api/task-attempts/{attempt['id']}/branch-status")["merges"]
    assert merges[0]["type"] == "direct" and merges[0]["merge_commit"] == str(head.id)


def test_rebase_conflict_is_typed_and_abortable(server: LiveServer, tmp_path: Path) -> None:
    project, _task, attempt = finished_attempt(server, tmp_path, "conflict")
    commit_file(project["git_repo_path"], "agent.txt", "main's version\n", "main edits agent.txt")
    response = server.post(f"/api/task-attempts/{attempt['id']}/rebase", json={"new_base_branch": "main"})
    body = response.json()
    assert response.status_code == 200 and body["success"] is False
    assert body["error_data"]["type"] == "merge_conflicts" and body["error_data"]["op"] == "rebase"
    status = server.ok("GET", f"/api/task-attempts/{attempt['id']}/branch-status")
    assert status["is_rebase_in_progress"] is True and "agent.txt" in status["conflicted_files"]
    assert server.ok("POST", f"/api/task-attempts/{attempt['id']}/conflicts/abort") is None
    status = server.ok("GET", f"/api/task-attempts/{attempt['id']}/branch-status")
    assert status["is_rebase_in_progress"] is False and status["conflicted_files"] == []
    assert pygit2.Repository(project["git_repo_path"]).head.shorthand == "main"


def test_rebase_onto_missing_branch_and_change_target(server: LiveServer, tmp_path: Path) -> None:
    project, _task, attempt = finished_attempt(server, tmp_path)
    message = server.post(
        f"/api/task-attempts/{attempt['id']}/rebase", json={"new_base_branch": "nope"}
    ).json()
    assert message["success"] is False and "nope" in message["message"]
    assert (
        server.post(
            f"/api/task-attempts/{attempt['id']}/change-target-branch",
            json={"new_target_branch": "x; rm -rf /"},
        ).json()["success"]
        is False
    )
    repo = pygit2.Repository(project["git_repo_path"])
    repo.branches.local.create("develop", repo.head.peel(pygit2.Commit))
    changed = server.ok(
        "POST",
        f"/api/task-attempts/{attempt['id']}/change-target-branch",
        json={"new_target_branch": "develop"},
    )
    assert changed == {"new_target_branch": "develop", "status": [1, 0]}
    assert server.ok("GET", f"/api/task-attempts/{attempt['id']}")["target_branch"] == "develop"


def test_rename_commit_info_delete_file_children(server: LiveServer, tmp_path: Path) -> None:
    project, task, attempt = finished_attempt(server, tmp_path)
    for bad in ["", "has space", "a..b", "x;y|z`"]:
        assert (
            server.post(
                f"/api/task-attempts/{attempt['id']}/rename-branch", json={"new_branch_name": bad}
            ).json()["success"]
            is False
        )
    renamed = server.ok(
        "POST", f"/api/task-attempts/{attempt['id']}/rename-branch", json={"new_branch_name": "feature/x"}
    )
    assert renamed == {"branch": "feature/x"}
    assert server.ok("GET", f"/api/task-attempts/{attempt['id']}")["branch"] == "feature/x"
    repo = pygit2.Repository(project["git_repo_path"])
    sha = str(repo.lookup_branch("feature/x").target)
    info = server.ok("GET", f"/api/task-attempts/{attempt['id']}/commit-info", params={"sha": sha})
    assert info["sha"] == sha and info["subject"].startswith("Done:")
    compare = server.ok("GET", f"/api/task-attempts/{attempt['id']}/commit-compare", params={"sha": sha})
    assert compare["ahead_from_head"] == 0 and compare["is_linear"] is True
    for bad in ["../outside.txt", "/etc/passwd", ".git/config"]:
        response = server.post(f"/api/task-attempts/{attempt['id']}/delete-file", params={"file_path": bad})
        assert response.json()["success"] is False
    assert (
        server.ok(
            "POST", f"/api/task-attempts/{attempt['id']}/delete-file", params={"file_path": "agent.txt"}
        )
        is None
    )
    assert "agent.txt" not in {e.name for e in repo.lookup_branch("feature/x").peel(pygit2.Commit).tree}
    children = server.ok("GET", f"/api/task-attempts/{attempt['id']}/children")
    assert children["parent_task"] is None and children["children"] == []  # made by hand: no parent
    assert children["current_attempt"]["id"] == attempt["id"]
    # a subtask made from this attempt: the attempt lists it, and its own attempts name this task
    sub = server.ok(
        "POST",
        "/api/tasks",
        json={"project_id": project["id"], "title": "sub", "parent_task_attempt": attempt["id"]},
    )
    assert sub["parent_task_attempt"] == attempt["id"]
    children = server.ok("GET", f"/api/task-attempts/{attempt['id']}/children")
    assert [c["id"] for c in children["children"]] == [sub["id"]] and children["parent_task"] is None
    sub_attempt = server.ok(
        "POST",
        "/api/task-attempts",
        json={
            "task_id": sub["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        },
    )
    relations = server.ok("GET", f"/api/task-attempts/{sub_attempt['id']}/children")
    assert relations["parent_task"]["id"] == task["id"] and relations["children"] == []
    # a parent that does not exist is refused, and nothing is created
    missing = "00000000-0000-4000-8000-000000000000"
    refused = server.post(
        "/api/tasks", json={"project_id": project["id"], "title": "orphan", "parent_task_attempt": missing}
    ).json()
    assert refused["success"] is False
    assert "orphan" not in {
        t["title"] for t in server.ok("GET", "/api/tasks", params={"project_id": project["id"]})
    }


def test_worktree_deleted_behind_the_servers_back_is_recreated(server: LiveServer, tmp_path: Path) -> None:
    import shutil

    _project, _task, attempt = finished_attempt(server, tmp_path)
    worktree = server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    shutil.rmtree(worktree)
    status = server.ok("GET", f"/api/task-attempts/{attempt['id']}/branch-status")
    assert status["commits_ahead"] == 1 and Path(worktree, "agent.txt").exists()


def test_search_and_git_repos(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    commit_file(project["git_repo_path"], "README.md", "hi", "readme")
    (Path(project["git_repo_path"]) / ".gitignore").write_text("secret.env\n")
    (Path(project["git_repo_path"]) / "secret.env").write_text("x")
    results = server.ok("GET", f"/api/projects/{project['id']}/search", params={"q": "readme"})
    assert results[0]["path"] == "README.md" and results[0]["match_type"] == "FileName"
    assert server.ok("GET", f"/api/projects/{project['id']}/search", params={"q": "secret"}) == []
    settings = server.ok(
        "GET", f"/api/projects/{project['id']}/search", params={"q": "secret", "mode": "settings"}
    )
    assert [r["path"] for r in settings] == ["secret.env"]
    assert server.get(f"/api/projects/{project['id']}/search", params={"q": ""}).json()["success"] is False
    repos = server.ok("GET", "/api/filesystem/git-repos", params={"path": str(tmp_path)})
    assert [r["path"] for r in repos] == [project["git_repo_path"]]
    assert isinstance(repos[0]["last_modified"], int)


def test_project_path_no_longer_a_repository(server: LiveServer, tmp_path: Path) -> None:
    import shutil

    project = make_project(server, tmp_path)
    shutil.rmtree(Path(project["git_repo_path"]) / ".git")
    body = server.get(f"/api/projects/{project['id']}/branches").json()
    assert body["success"] is False and body["message"]
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "t"})
    attempt: Any = server.post(
        "/api/task-attempts",
        json={
            "task_id": task["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        },
    ).json()
    assert attempt["success"] is False and "no longer a git repository" in attempt["message"]
