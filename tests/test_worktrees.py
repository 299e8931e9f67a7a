"""WorktreeManager on real repositories: naming, create/ensure/remove, copy files, cleanup safety."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pygit2
import pytest

from anyon.services.git import (
    BranchExists,
    BranchNotFound,
    GitService,
    InvalidBranchName,
    InvalidPath,
    WorktreeError,
)
from anyon.services.git.worktree_names import slugify
from anyon.services.git.worktrees import WorktreeManager

ATTEMPT = "3f2a9c1e-7777-4000-8000-000000000003"


def write(root: Path | str, rel: str, text: str) -> None:
    p = Path(root) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    svc = GitService()
    root = tmp_path / "repo"
    svc.init_repo(str(root))
    write(root, "README.md", "hi\n")
    write(root, ".env", "SECRET=1\n")
    write(root, "config/local.json", "{}\n")
    write(root, ".gitignore", ".env\nconfig/local.json\n")
    svc.commit_all(str(root), "initial")
    return root


@pytest.fixture
def wm(tmp_path: Path) -> WorktreeManager:
    return WorktreeManager(str(tmp_path / "worktrees"))


def git_worktrees(repo: Path) -> str:
    return subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout


def test_naming_follows_spec(wm: WorktreeManager) -> None:
    assert slugify("Fix the Login bug!!  now please") == "fix-the-login-bu"
    assert slugify("  --Ünïcode & stuff--  ") == "n-code-stuff"
    assert slugify("a" * 15 + " b") == "a" * 15  # cut at 16 then trailing '-' trimmed
    assert wm.branch_name("vk", ATTEMPT, "Fix login bug") == "vk/3f2a-fix-login-bug"
    assert wm.branch_name("", ATTEMPT, "Fix login bug") == "3f2a-fix-login-bug"
    assert wm.branch_name("team/vk/", ATTEMPT, "x") == "team/vk/3f2a-x"
    assert wm.worktree_path(ATTEMPT, "Fix login bug") == os.path.join(wm.base_dir, "3f2a-fix-login-bug")
    with pytest.raises(InvalidBranchName):
        wm.branch_name("bad prefix;", ATTEMPT, "x")
    with pytest.raises(InvalidPath):
        wm.branch_name("vk", "not-a-uuid", "x")


def test_create_and_remove(wm: WorktreeManager, repo: Path) -> None:
    branch = wm.branch_name("vk", ATTEMPT, "task")
    path = wm.worktree_path(ATTEMPT, "task")
    assert wm.create(str(repo), branch, path, "main") == path
    assert (Path(path) / "README.md").read_text() == "hi\n"
    assert wm.is_healthy(str(repo), path)
    assert GitService().current_branch(path) == branch
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=path, capture_output=True, text=True).stdout
        == ""
    )
    assert wm.infer_repo_path(path) == str(repo) + os.sep
    with pytest.raises(BranchExists):
        wm.create(str(repo), branch, path, "main")
    assert wm.remove(str(repo), path)
    assert not os.path.exists(path)
    assert path not in git_worktrees(repo)
    assert not (repo / ".git" / "worktrees" / os.path.basename(path)).exists()
    assert pygit2.Repository(str(repo)).lookup_branch(branch) is not None  # the branch survives removal
    assert not wm.remove(str(repo), path)  # idempotent


def test_create_bad_input_leaves_nothing_behind(wm: WorktreeManager, repo: Path, tmp_path: Path) -> None:
    path = wm.worktree_path(ATTEMPT, "task")
    with pytest.raises(BranchNotFound):
        wm.create(str(repo), "vk/x", path, "nope")
    with pytest.raises(InvalidBranchName):
        wm.create(str(repo), "vk/x; rm -rf ~", path, "main")
    with pytest.raises(InvalidPath):
        wm.create(str(repo), "vk/x", str(tmp_path / "elsewhere"), "main")
    with pytest.raises(InvalidPath):
        wm.create(str(repo), "vk/x", os.path.join(wm.base_dir, "..", "escape"), "main")
    assert not os.path.exists(path) and not (tmp_path / "elsewhere").exists()
    assert pygit2.Repository(str(repo)).lookup_branch("vk/x") is None


def test_ensure_recreates_deleted_worktree(wm: WorktreeManager, repo: Path) -> None:
    branch = wm.branch_name("vk", ATTEMPT, "task")
    path = wm.worktree_path(ATTEMPT, "task")
    wm.create(str(repo), branch, path, "main")
    write(path, "work.txt", "w\n")
    GitService().commit_all(path, "work")
    assert wm.ensure(str(repo), branch, path) is False  # healthy: untouched
    shutil.rmtree(path)  # deleted behind our back
    assert wm.ensure(str(repo), branch, path) is True
    assert (Path(path) / "work.txt").read_text() == "w\n"  # committed work is on the branch
    shutil.rmtree(repo / ".git" / "worktrees" / os.path.basename(path))  # metadata gone, folder left
    assert wm.ensure(str(repo), branch, path) is True
    assert wm.is_healthy(str(repo), path)
    with pytest.raises(BranchNotFound):
        wm.ensure(str(repo), "vk/none", wm.worktree_path(ATTEMPT, "other"))


def test_concurrent_ensure_is_safe(wm: WorktreeManager, repo: Path) -> None:
    branch = wm.branch_name("vk", ATTEMPT, "task")
    path = wm.worktree_path(ATTEMPT, "task")
    wm.create(str(repo), branch, path, "main")
    shutil.rmtree(path)
    results: list[bool] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(wm.ensure(str(repo), branch, path))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results) == [False] * 5 + [True]
    assert wm.is_healthy(str(repo), path)


def test_remove_without_repo_infers_it(wm: WorktreeManager, repo: Path) -> None:
    branch = wm.branch_name("vk", ATTEMPT, "task")
    path = wm.worktree_path(ATTEMPT, "task")
    wm.create(str(repo), branch, path, "main")
    assert wm.remove(None, path)
    assert not os.path.exists(path) and path not in git_worktrees(repo)


def test_copy_files(wm: WorktreeManager, repo: Path, tmp_path: Path) -> None:
    branch = wm.branch_name("vk", ATTEMPT, "task")
    path = wm.worktree_path(ATTEMPT, "task")
    wm.create(str(repo), branch, path, "main")
    outside = tmp_path / "secret.txt"
    outside.write_text("outside")
    os.symlink(outside, repo / "link-out")
    copied = wm.copy_files(
        str(repo), path, ".env, config/*.json, ../secret.txt, /etc/hostname, missing, link-out"
    )
    assert copied == [".env", "config/local.json"]
    assert (Path(path) / ".env").read_text() == "SECRET=1\n"
    assert not (Path(path) / "link-out").exists()
    assert wm.copy_files(str(repo), path, None) == []


def test_sweep_orphans_removes_only_unknown_entries_inside_base(
    wm: WorktreeManager, repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    known_branch = wm.branch_name("vk", ATTEMPT, "known")
    known = wm.worktree_path(ATTEMPT, "known")
    wm.create(str(repo), known_branch, known, "main")
    other = "0b0b0000-0000-4000-8000-000000000000"
    orphan = wm.worktree_path(other, "orphan")
    wm.create(str(repo), wm.branch_name("vk", other, "orphan"), orphan, "main")
    stray = Path(wm.base_dir) / "stray-dir"
    stray.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    os.symlink(outside, Path(wm.base_dir) / "link-out")  # a symlink in the base dir pointing out
    os.symlink(outside, stray / "nested-link")  # and one inside a stray directory
    (Path(wm.base_dir) / "notes.txt").write_text("plain files are left alone")

    with caplog.at_level(logging.INFO, logger="anyon.services.git.worktree_removal"):
        planned = wm.sweep_orphans([known], dry_run=True)
    assert sorted(planned) == sorted([orphan, str(stray), os.path.join(wm.base_dir, "link-out")])
    assert os.path.exists(orphan) and stray.exists()
    assert "dry run" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="anyon.services.git.worktree_removal"):
        removed = wm.sweep_orphans([known, None])
    assert sorted(removed) == sorted(planned)
    assert not os.path.exists(orphan) and not stray.exists()
    assert not os.path.lexists(Path(wm.base_dir) / "link-out")
    assert (outside / "precious.txt").read_text() == "keep me"  # never followed out
    assert (Path(wm.base_dir) / "notes.txt").exists()
    assert wm.is_healthy(str(repo), known)
    assert orphan not in git_worktrees(repo)  # its metadata was pruned
    for path in removed:
        assert path in caplog.text  # every deletion is logged


def test_remove_refuses_paths_outside_base(wm: WorktreeManager, repo: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("keep")
    for bad in [str(victim), os.path.join(wm.base_dir, "..", "victim"), str(repo), "relative/path", ""]:
        with pytest.raises(InvalidPath):
            wm.remove(str(repo), bad)
    assert (victim / "data.txt").exists() and (repo / "README.md").exists()
    assert wm.expire([(str(repo), str(victim))]) == []
    assert (victim / "data.txt").exists()


def test_remove_symlinked_worktree_only_unlinks(wm: WorktreeManager, repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    os.makedirs(wm.base_dir, exist_ok=True)
    link = os.path.join(wm.base_dir, "3f2a-link")
    os.symlink(outside, link)
    assert wm.remove(str(repo), link)
    assert not os.path.lexists(link) and (outside / "precious.txt").exists()


def test_expiry_helpers(wm: WorktreeManager, repo: Path) -> None:
    now = datetime(2025, 1, 10, tzinfo=UTC)
    assert wm.is_expired(now - timedelta(hours=73), 72, False, now=now)
    assert not wm.is_expired(now - timedelta(hours=71), 72, False, now=now)
    assert not wm.is_expired(now - timedelta(hours=500), 72, True, now=now)
    assert wm.is_expired((now - timedelta(hours=100)).replace(tzinfo=None), now=now)
    branch = wm.branch_name("vk", ATTEMPT, "task")
    path = wm.worktree_path(ATTEMPT, "task")
    wm.create(str(repo), branch, path, "main")
    assert wm.vanished([path, None, os.path.join(wm.base_dir, "gone")]) == [os.path.join(wm.base_dir, "gone")]
    assert wm.expire([(str(repo), path)]) == [path]
    assert wm.vanished([path]) == [path]


def test_create_without_git_executable_uses_libgit2(
    wm: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyon.services.git.worktree_creation as worktree_creation

    monkeypatch.setattr(worktree_creation.shutil, "which", lambda name: None)  # a host without the git CLI
    branch = wm.branch_name("vk", ATTEMPT, "no cli")
    path = wm.worktree_path(ATTEMPT, "no cli")
    wm.create(str(repo), branch, path, "main")
    assert wm.is_healthy(str(repo), path) and (Path(path) / "README.md").exists()
    shutil.rmtree(path)
    assert wm.ensure(str(repo), branch, path) is True
    assert wm.remove(str(repo), path)


def test_unusable_base_dir_is_a_clear_error(tmp_path: Path, repo: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the base dir should be")
    wm = WorktreeManager(str(blocker / "worktrees"))
    branch = wm.branch_name("vk", ATTEMPT, "blocked")
    with pytest.raises(WorktreeError):
        wm.create(str(repo), branch, wm.worktree_path(ATTEMPT, "blocked"), "main")
    assert pygit2.Repository(str(repo)).lookup_branch(branch) is None
