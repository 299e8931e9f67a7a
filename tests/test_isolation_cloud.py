"""THREAT-MODEL rules 1-3 in cloud mode, played by a hostile agent through the HTTP API (real Docker).

The attacker (tests/agents/attacker_agent.sh) poisons every git config, attributes file and hook directory
it can reach, tries to move and read another attempt's branch and files, plants symlinks pointing out of its
worktree and commits them with a legitimate change. Then the server does what it always does: follow-ups,
diffs, branch status, rebase, merge, and new attempts of the same project that check out the poisoned
branch and copy files into it. Nothing may run on the host, nothing outside the attacker's worktree may
change, and the legitimate commit must still arrive and merge.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pygit2
import pytest
from websockets.sync.client import connect

from tests import test_executions_cloud
from tests.live_server import LiveServer
from tests.test_executions_local import branch_files, start, wait_processes

pytestmark = pytest.mark.docker

cloud = test_executions_cloud.cloud  # the cloud-mode server fixture

ATTACKER = Path(__file__).parent / "agents" / "attacker_agent.sh"


def _commit_files(repo: pygit2.Repository, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        Path(repo.workdir, name).write_text(text)
        repo.index.add(name)
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, message, repo.index.write_tree(), [repo.head.target])


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root`` (links as their target), to compare before and after."""
    seen: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            seen[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            seen[rel] = path.read_bytes()
        else:
            seen[rel] = "dir"
    return seen


def _git_metadata(repo_path: str) -> dict[str, bytes | str]:
    """The project repository's configuration, attributes and hooks: what the host's git reads."""
    gitdir = Path(repo_path, ".git")
    picked: dict[str, bytes | str] = {"config": (gitdir / "config").read_bytes()}
    for sub in ("info", "hooks"):
        if (gitdir / sub).exists():
            picked.update({f"{sub}/{k}": v for k, v in _snapshot(gitdir / sub).items()})
    return picked


def _diff_shows(server: LiveServer, attempt_id: str, path: str) -> bool:
    """Whether the attempt's diff stream (one entry per frame) comes to an entry for ``path``."""
    with connect(f"{server.ws_url}/api/task-attempts/{attempt_id}/diff/ws", open_timeout=10) as conn:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame = json.loads(conn.recv(timeout=30))
            if any(op.get("path") == f"/entries/{path}" for op in frame.get("JsonPatch", [])):
                return True
    return False


def test_a_hostile_agent_changes_nothing_outside_its_attempt(cloud: LiveServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("ORIGINAL\n")
    marker = tmp_path / "host-command-ran"
    project = cloud.ok(
        "POST",
        "/api/projects",
        json={
            "name": "isolation",
            "git_repo_path": str(tmp_path / "isolation"),
            "use_existing_repo": False,
            "copy_files": "config.env",
        },
    )
    repo_path = project["git_repo_path"]
    repo = pygit2.Repository(repo_path)
    shutil.copy(ATTACKER, Path(repo_path) / ".agent.sh")
    _commit_files(repo, {".gitignore": "config.env\n"}, "ignore config.env")
    repo.index.add(".agent.sh")
    _commit_files(repo, {}, "add agent")
    repo.branches.local.create("release", repo.head.peel(pygit2.Commit))
    Path(repo_path, "config.env").write_text("PROJECT CONFIG\n")  # what copy_files copies

    # an ordinary attempt: the victim
    _task, victim = start(cloud, project, "victim work")
    assert [p["status"] for p in wait_processes(cloud, victim["id"], 1, timeout=120)] == ["completed"]
    victim = cloud.ok("GET", f"/api/task-attempts/{victim['id']}")
    victim_tip = str(repo.lookup_branch(victim["branch"]).target)
    assert Path(victim["container_ref"], "config.env").read_text() == "PROJECT CONFIG\n"
    metadata_before = _git_metadata(repo_path)
    outside_before = _snapshot(outside)

    # the attacker, on another base branch
    prompt = f"{victim['branch']} {marker} {victim['container_ref']} {outside}"
    _task, attacker = start(cloud, project, "ATTACK", prompt, "release")
    processes = wait_processes(cloud, attacker["id"], 1, timeout=120)
    assert processes[0]["status"] == "completed", processes
    attacker = cloud.ok("GET", f"/api/task-attempts/{attacker['id']}")
    worktree = Path(attacker["container_ref"])
    # what it wrote to "the project's .git" landed in its own container's filesystem (only the object
    # store is mounted, read-only): the host-side checks at the end are what count
    assert "blocked: objects" in (worktree / "attack.log").read_text()
    stolen = (worktree / "stolen.txt").read_text()
    assert "victim work" not in stolen and victim_tip not in stolen, stolen

    # the server's own work on the poisoned attempt and on the project
    status = cloud.ok("GET", f"/api/task-attempts/{attacker['id']}/branch-status")
    assert status["commits_ahead"] >= 1 and status["conflict_op"] is None
    assert _diff_shows(cloud, attacker["id"], "legit.txt")
    cloud.ok("POST", f"/api/task-attempts/{attacker['id']}/follow-up", json={"prompt": "continue"})
    wait_processes(cloud, attacker["id"], 2, timeout=120)
    rebase = cloud.post(f"/api/task-attempts/{attacker['id']}/rebase", json={})
    assert rebase.status_code < 500, rebase.text  # its own hooks may refuse; the host runs none of them
    cloud.ok("POST", f"/api/task-attempts/{attacker['id']}/merge")
    merged = branch_files(repo_path, "release")
    assert {"legit.txt", "config.env", ".gitattributes", "payload.poison"} <= merged

    # a new attempt checks out the merged, poisoned branch: attributes, and the committed symlink where
    # copy_files writes
    _task, follower = start(cloud, project, "after the attack", base="release")
    assert wait_processes(cloud, follower["id"], 1, timeout=120)[0]["status"] == "completed"
    follower = cloud.ok("GET", f"/api/task-attempts/{follower['id']}")
    copied = Path(follower["container_ref"], "config.env")
    assert copied.is_symlink() and os.readlink(copied) == str(outside / "target.txt")

    # the victim is untouched by all of it, and still rebases and merges normally
    assert str(repo.lookup_branch(victim["branch"]).target) == victim_tip
    _commit_files(repo, {"main-moved.txt": "x\n"}, "main moves on")
    cloud.ok("POST", f"/api/task-attempts/{victim['id']}/rebase", json={})
    cloud.ok("POST", f"/api/task-attempts/{victim['id']}/merge")
    assert "agent.txt" in branch_files(repo_path, "main")

    time.sleep(0.5)  # anything a payload started on the host would have written by now
    assert not marker.exists(), "a command planted by the agent ran on the host"
    assert _git_metadata(repo_path) == metadata_before
    assert _snapshot(outside) == outside_before
    assert not Path(repo_path, ".git", "objects", "poison").exists()


def test_the_container_sees_its_own_repository_and_the_objects_read_only(
    cloud: LiveServer, tmp_path: Path
) -> None:
    project = cloud.ok(
        "POST",
        "/api/projects",
        json={
            "name": "mounts",
            "git_repo_path": str(tmp_path / "mounts"),
            "use_existing_repo": False,
            "setup_script": (
                "git rev-parse --git-dir --git-common-dir > gitdirs.txt; "
                "cat .git/objects/info/alternates >> gitdirs.txt; "
                'touch "$(cat .git/objects/info/alternates)/probe" 2>/dev/null || echo objects-read-only '
                ">> gitdirs.txt; git log --oneline | wc -l >> gitdirs.txt"
            ),
        },
    )
    _task, attempt = start(cloud, project, "look around")
    wait_processes(cloud, attempt["id"], 1, timeout=120)
    attempt = cloud.ok("GET", f"/api/task-attempts/{attempt['id']}")
    lines = Path(attempt["container_ref"], "gitdirs.txt").read_text().split()
    objects = os.path.realpath(Path(project["git_repo_path"], ".git", "objects"))
    assert lines[:2] == [".git", ".git"]  # its own repository, not a linked worktree of the project
    assert lines[2] == objects and "objects-read-only" in lines and int(lines[-1]) >= 1
    assert Path(attempt["container_ref"], ".git").is_dir()
    # the server sees the setup script's file through its own view of the checkout
    status = cloud.ok("GET", f"/api/task-attempts/{attempt['id']}/branch-status")
    assert status["untracked_count"] >= 1 and status["head_oid"] is not None
