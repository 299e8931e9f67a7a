"""Hostile input through the real server: refused with a clear 4xx or soft error, never a 500.

Nothing changes: rows, branches, worktree folders and settings files are compared before and after.

Deeply nested JSON, branch names git would refuse (full refs, 256+ characters, ``..``, ``@{``, ``.lock``,
control characters, spaces, a leading ``-``), NUL characters in settings, paths and scripts, and
malformed profile files; plus the all-or-nothing rules of create-and-start, partial project updates
and rebase bodies however they are framed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_api_git import finished_attempt
from tests.test_executions_local import make_project, use_fake_agent

ENVELOPE_KEYS = {"success", "data", "error_data", "message"}
BAD_BRANCHES = [
    "refs/heads/main",
    "x" * 256,
    "a/" + "é" * 200,
    "a..b",
    "a@{1}",
    "topic.lock",
    "a/.hidden",
    "a\x01b",
    "a\x7fb",
    "has space",
    "-x",
    "",
    "HEAD",
    "@",
    "a/",
    "/a",
    "a//b",
    "end.",
    "what?",
    "st*r",
    "[x",
    "a\\b",
    "a~1",
    "a^",
    "a:b",
    "main\x00",
]


JSON = {"content-type": "application/json"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path)) as live:
        use_fake_agent(live)
        yield live


def refused(response: Any) -> str:
    """A refusal: a 4xx in the envelope, or the contract's soft error (200, success false)."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert response.status_code in (200, 400, 404, 409, 413, 422), response.status_code
    body = response.json()
    assert set(body) == ENVELOPE_KEYS and body["success"] is False, body
    assert "Traceback" not in response.text
    return str(body["message"])


def state(server: LiveServer, project: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """What a refused request must not change: rows, branches, worktree folders, settings files."""
    repo = pygit2.Repository(project["git_repo_path"])
    tasks = server.ok("GET", "/api/tasks", params={"project_id": project["id"]})
    worktrees = tmp_path / "anyon" / "worktrees"
    data = tmp_path / "anyon" / "data"
    return {
        "tasks": sorted(t["id"] for t in tasks),
        "attempts": sorted(a["id"] for a in server.ok("GET", "/api/task-attempts")),
        "projects": server.ok("GET", "/api/projects"),
        "branches": sorted(repo.branches.local),
        "worktrees": sorted(os.listdir(worktrees)) if worktrees.exists() else [],
        "files": {
            name: (data / name).read_bytes() if (data / name).exists() else None
            for name in ("config.json", "profiles.json")
        },
    }


def test_deeply_nested_json_is_refused_everywhere(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    before = state(server, project, tmp_path)
    for deep in ("[" * 100_000 + "]" * 100_000, '{"a":' * 5000 + "1" + "}" * 5000):
        for method, path in [("POST", "/api/tasks"), ("PUT", "/api/config"), ("POST", "/api/tags")]:
            response = server.client.request(
                method, path, content=deep, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400 and "nested deeper than 64" in refused(response)
        # the contract's soft error
        message = refused(server.put("/api/profiles", content=deep, headers=JSON))
        assert "Invalid executor profiles format" in message and "nested" in message
    # 64 levels are fine (the request fails for its content, not its shape)
    ok_depth = {"title": "x", "project_id": project["id"], "description": None}
    nested: Any = ok_depth
    for _ in range(62):
        nested = [nested]
    assert "nested" not in refused(server.post("/api/tasks", json={**ok_depth, "image_ids": nested}))
    assert state(server, project, tmp_path) == before


def test_bad_branch_names_are_refused_at_every_entry(server: LiveServer, tmp_path: Path) -> None:
    project, task, attempt = finished_attempt(server, tmp_path)
    before = state(server, project, tmp_path)
    before_attempt = server.ok("GET", f"/api/task-attempts/{attempt['id']}")
    profile = {"executor": "CLAUDE_CODE"}
    for bad in BAD_BRANCHES:
        sends = [
            (
                "/api/task-attempts",
                {"task_id": task["id"], "executor_profile_id": profile, "base_branch": bad},
            ),
            (
                "/api/tasks/create-and-start",
                {
                    "task": {"project_id": project["id"], "title": "never"},
                    "executor_profile_id": profile,
                    "base_branch": bad,
                },
            ),
            (f"/api/task-attempts/{attempt['id']}/rename-branch", {"new_branch_name": bad}),
            (f"/api/task-attempts/{attempt['id']}/change-target-branch", {"new_target_branch": bad}),
            (f"/api/task-attempts/{attempt['id']}/rebase", {"new_base_branch": bad}),
            (f"/api/task-attempts/{attempt['id']}/rebase", {"old_base_branch": bad}),
        ]
        for path, body in sends:
            message = refused(server.post(path, json=body))
            assert "branch" in message.lower(), (bad, path, message)
    assert state(server, project, tmp_path) == before
    assert server.ok("GET", f"/api/task-attempts/{attempt['id']}") == before_attempt


def test_create_and_start_is_all_or_nothing(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    before = state(server, project, tmp_path)
    task = {"project_id": project["id"], "title": "never created"}
    bad_requests = [
        {"task": task, "executor_profile_id": {"executor": "NOPE"}, "base_branch": "main"},
        {
            "task": task,
            "executor_profile_id": {"executor": "CLAUDE_CODE", "variant": "NOPE"},
            "base_branch": "main",
        },
        {"task": task, "executor_profile_id": {"executor": "CLAUDE_CODE"}, "base_branch": "does-not-exist"},
        {"task": task, "executor_profile_id": {"executor": "CLAUDE_CODE"}, "base_branch": "x" * 300},
        {"task": task, "executor_profile_id": {"executor": "CLAUDE_CODE"}, "base_branch": "refs/heads/main"},
        {
            "task": {**task, "title": "  "},
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        },
    ]
    for body in bad_requests:
        refused(server.post("/api/tasks/create-and-start", json=body))
    assert state(server, project, tmp_path) == before
    # the same request with good values creates exactly one task and one attempt
    good = {"task": task, "executor_profile_id": {"executor": "CLAUDE_CODE"}, "base_branch": "main"}
    created = server.ok("POST", "/api/tasks/create-and-start", json=good)
    after = state(server, project, tmp_path)
    assert after["tasks"] == [created["id"]] and len(after["attempts"]) == 1


def test_nul_bytes_are_refused_in_settings_paths_scripts_and_names(
    server: LiveServer, tmp_path: Path
) -> None:
    project = make_project(server, tmp_path)
    server.ok("PUT", "/api/config", json=server.ok("GET", "/api/info")["config"])  # config.json exists
    before = state(server, project, tmp_path)
    config = server.ok("GET", "/api/info")["config"]
    for dotted in ["workspace_dir", "last_app_version", "github.username", "editor.custom_command"]:
        body = json.loads(json.dumps(config))
        target = body
        *parents, leaf = dotted.split(".")
        for name in parents:
            target = target[name]
        target[leaf] = "a\x00b"
        message = refused(server.put("/api/config", json=body))
        assert "NUL" in message and dotted in message
    nul_requests = [
        (
            "POST",
            "/api/projects",
            {"name": "n", "git_repo_path": str(tmp_path / "a\x00b"), "use_existing_repo": False},
        ),
        ("POST", "/api/projects", {"name": "n\x00", "git_repo_path": "", "use_existing_repo": False}),
        (
            "POST",
            "/api/projects",
            {"name": "n", "git_repo_path": "", "use_existing_repo": False, "setup_script": "\x00"},
        ),
        ("PUT", f"/api/projects/{project['id']}", {"git_repo_path": "/tmp/\x00"}),
        ("PUT", f"/api/projects/{project['id']}", {"dev_script": "echo \x00"}),
        ("POST", "/api/tasks", {"project_id": project["id"], "title": "a\x00"}),
        ("POST", "/api/tags", {"tag_name": "a\x00", "content": "x"}),
        ("POST", "/api/tags", {"tag_name": "a", "content": "x", "\x00": 1}),
    ]
    for method, path, body in nul_requests:
        assert "NUL" in refused(server.client.request(method, path, json=body))
    for path, params in [
        ("/api/filesystem/directory", {"path": "/tmp/\x00"}),
        ("/api/filesystem/git-repos", {"path": "/tmp/\x00"}),
        ("/api/tags", {"search": "\x00"}),
        (f"/api/projects/{project['id']}/search", {"q": "a\x00"}),
        ("/api/containers/info", {"ref": "\x00"}),
    ]:
        assert "NUL" in refused(server.get(path, params=params))
    assert server.ok("GET", "/api/tags") == []
    assert state(server, project, tmp_path) == before


def test_profiles_refuse_unknown_keys_bad_utf8_and_nul(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    before = state(server, project, tmp_path)
    good = json.loads(server.ok("GET", "/api/profiles")["content"])
    bad_bodies = [
        json.dumps({**good, "surprise": 1}).encode(),
        b'{"executors": {}, "x": "\xff\xfe"}',
        b'{"executors": {"CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": {"append_prompt": "\xc3"}}}}}',
        json.dumps(
            {"executors": {"CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": {"base_command_override": "sh\x00"}}}}}
        ).encode(),
    ]
    for raw in bad_bodies:
        message = refused(server.put("/api/profiles", content=raw, headers=JSON))
        assert message.startswith("Invalid executor profiles format"), message
    assert state(server, project, tmp_path) == before
    assert json.loads(server.ok("GET", "/api/profiles")["content"]) == good


def test_partial_project_update_changes_only_what_it_sends(server: LiveServer, tmp_path: Path) -> None:
    project = make_project(server, tmp_path)
    full = server.ok(
        "PUT",
        f"/api/projects/{project['id']}",
        json={"setup_script": "echo setup", "dev_script": "echo dev", "copy_files": ".env"},
    )
    renamed = server.ok("PUT", f"/api/projects/{project['id']}", json={"name": "renamed"})
    assert renamed["name"] == "renamed"
    for key in ("git_repo_path", "setup_script", "dev_script", "cleanup_script", "copy_files"):
        assert renamed[key] == full[key], key
    cleared = server.ok("PUT", f"/api/projects/{project['id']}", json={"dev_script": None, "name": None})
    assert cleared["dev_script"] is None and cleared["name"] == "renamed"
    assert cleared["setup_script"] == "echo setup" and cleared["copy_files"] == ".env"
    assert server.ok("GET", f"/api/projects/{project['id']}") == cleared


def test_rebase_reads_its_body_however_it_is_framed(server: LiveServer, tmp_path: Path) -> None:
    project, _task, attempt = finished_attempt(server, tmp_path)
    url = f"/api/task-attempts/{attempt['id']}/rebase"

    def chunked(payload: bytes) -> Iterator[bytes]:
        yield payload[:5]
        yield payload[5:]

    # chunked (no Content-Length): the body is read, so the unknown branch is reported
    body = json.dumps({"new_base_branch": "nope"}).encode()
    response = server.post(url, content=chunked(body), headers={"content-type": "application/json"})
    assert "transfer-encoding" in {k.lower() for k in response.request.headers}
    assert "nope" in refused(response)
    # Content-Length framing: the same
    assert "nope" in refused(server.post(url, json={"new_base_branch": "nope"}))
    assert server.ok("GET", f"/api/task-attempts/{attempt['id']}")["target_branch"] == "main"
    # an empty body, chunked or not, rebases onto the current target
    assert server.ok("POST", url) is None
    assert (
        server.ok("POST", url, content=chunked(b"  "), headers={"content-type": "application/json"}) is None
    )
    repo = pygit2.Repository(project["git_repo_path"])
    repo.branches.local.create("develop", repo.head.peel(pygit2.Commit))
    develop = json.dumps({"new_base_branch": "develop"}).encode()
    assert (
        server.ok("POST", url, content=chunked(develop), headers={"content-type": "application/json"}) is None
    )
    assert server.ok("GET", f"/api/task-attempts/{attempt['id']}")["target_branch"] == "develop"
