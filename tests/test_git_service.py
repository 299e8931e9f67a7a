"""GitService on real repositories built with pygit2 and the git CLI (no mocks)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from anyon.services.git import (
    BranchesDiverged,
    BranchExists,
    BranchNotFound,
    CommitNotFound,
    GitService,
    InvalidBranchName,
    InvalidPath,
    MergeConflicts,
    NotARepository,
    NothingToMerge,
    RebaseInProgress,
    WorktreeDirty,
)
from anyon.services.git.worktrees import WorktreeManager

ATTEMPT = "3f2a9c1e-0000-4000-8000-000000000001"


def git(cwd: Path | str, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="T")
    env["GIT_COMMITTER_EMAIL"] = "t@x"
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def write(root: Path | str, rel: str, text: str) -> None:
    p = Path(root) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.fixture
def svc() -> GitService:
    return GitService()


@pytest.fixture
def repo(tmp_path: Path, svc: GitService) -> Path:
    root = tmp_path / "repo"
    svc.init_repo(str(root))
    write(root, "README.md", "hello\n")
    write(root, "src/app.py", "print('a')\n" * 5)
    write(root, ".gitignore", "*.log\n")
    svc.commit_all(str(root), "initial")
    return root


@pytest.fixture
def attempt(tmp_path: Path, repo: Path) -> tuple[WorktreeManager, str, str]:
    wm = WorktreeManager(str(tmp_path / "worktrees"))
    branch = wm.branch_name("vk", ATTEMPT, "Fix login bug")
    path = wm.worktree_path(ATTEMPT, "Fix login bug")
    wm.create(str(repo), branch, path, "main")
    return wm, branch, path


def test_init_repo_uses_main_and_initial_commit(tmp_path: Path, svc: GitService) -> None:
    root = tmp_path / "fresh"
    svc.init_repo(str(root))
    assert pygit2.Repository(str(root)).head_is_unborn
    sha = svc.ensure_initial_commit(str(root))
    assert svc.ensure_initial_commit(str(root)) == sha  # idempotent
    assert svc.current_branch(str(root)) == "main"
    svc.init_repo(str(root))  # idempotent on an existing repository
    assert svc.head_oid(str(root)) == sha


def test_fallback_identity_when_none_configured(repo: Path) -> None:
    commit = pygit2.Repository(str(repo)).head.peel(pygit2.Commit)
    # the test environment may or may not configure an identity; either way a commit exists with one
    assert commit.author.email


def test_not_a_repository(tmp_path: Path, svc: GitService, repo: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotARepository):
        svc.branches(str(plain))
    with pytest.raises(NotARepository):
        svc.branches(str(tmp_path / "missing"))
    inner = repo / "src"  # inside a repository but not one itself: no upward search
    with pytest.raises(NotARepository):
        svc.head_oid(str(inner))


def test_branches_local_and_remote(tmp_path: Path, svc: GitService, repo: Path) -> None:
    git(repo, "branch", "feature")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    names = {(b["name"], b["is_remote"], b["is_current"]) for b in svc.branches(str(clone))}
    assert ("main", False, True) in names
    assert ("origin/feature", True, False) in names
    assert not any(n.endswith("/HEAD") for n, _, _ in names)
    first = svc.branches(str(clone))[0]
    assert first["is_current"] and first["last_commit_date"].endswith("Z")


def test_branch_status_counts(svc: GitService, repo: Path, attempt: tuple[WorktreeManager, str, str]) -> None:
    _, branch, wt = attempt
    write(wt, "src/app.py", "changed\n")
    write(wt, "new.txt", "n\n")
    write(wt, "debug.log", "ignored\n")
    write(repo, "main_only.txt", "m\n")
    svc.commit_all(str(repo), "main moves on")
    st = svc.branch_status(str(repo), wt, branch, "main")
    assert st["commits_ahead"] == 0 and st["commits_behind"] == 1
    assert st["uncommitted_count"] == 1 and st["untracked_count"] == 1
    assert st["has_uncommitted_changes"] is True
    assert st["head_oid"] == svc.head_oid(wt)
    assert st["target_branch_name"] == "main"
    assert st["is_rebase_in_progress"] is False and st["conflict_op"] is None
    assert st["conflicted_files"] == [] and "merges" not in st
    assert svc.commit_all(wt, "work") is not None
    st = svc.branch_status(str(repo), wt, branch, "main")
    assert (st["commits_ahead"], st["commits_behind"], st["uncommitted_count"]) == (1, 1, 0)
    assert svc.ahead_behind(str(repo), branch, "main") == (1, 1)


def test_branch_status_unknown_target(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    with pytest.raises(BranchNotFound, match="nope"):
        svc.branch_status(str(repo), wt, branch, "nope")


def test_commit_all_stages_deletions_and_skips_ignored(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, _, wt = attempt
    assert svc.commit_all(wt, "nothing") is None
    os.remove(os.path.join(wt, "README.md"))
    write(wt, "x.log", "ignored")
    sha = svc.commit_all(wt, "delete readme")
    tree = pygit2.Repository(wt)[sha].peel(pygit2.Commit).tree
    assert "README.md" not in tree and "x.log" not in tree
    assert svc.is_clean(wt)


def test_squash_merge_target_not_checked_out(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    git(repo, "checkout", "-q", "-b", "other")
    write(wt, "feature.txt", "f\n")
    svc.commit_all(wt, "one")
    write(wt, "feature.txt", "f2\n")
    svc.commit_all(wt, "two")
    sha = svc.squash_merge(str(repo), branch, "main", "Fix login bug (anyon 3f2a9c1e)\n\nbody")
    r = pygit2.Repository(str(repo))
    commit = r[sha].peel(pygit2.Commit)
    assert commit.message.startswith("Fix login bug (anyon 3f2a9c1e)")
    assert len(commit.parents) == 1
    assert str(r.lookup_branch("main").target) == sha
    assert str(r.lookup_branch(branch).target) == sha  # task branch moved to the squash commit
    assert r.head.shorthand == "other" and not (repo / "feature.txt").exists()
    assert svc.is_clean(wt)
    st = svc.branch_status(str(repo), wt, branch, "main")
    assert (st["commits_ahead"], st["commits_behind"]) == (0, 0)


def test_squash_merge_into_checked_out_target(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    write(wt, "feature.txt", "f\n")
    svc.commit_all(wt, "feature")
    write(repo, "scratch.txt", "untracked stays\n")
    write(repo, "README.md", "local edit stays\n")  # unstaged, untouched by the merge
    sha = svc.squash_merge(str(repo), branch, "main", "squash")
    assert (repo / "feature.txt").read_text() == "f\n"
    assert (repo / "scratch.txt").exists()
    assert (repo / "README.md").read_text() == "local edit stays\n"
    assert svc.head_oid(str(repo)) == sha
    assert git(repo, "status", "--porcelain").splitlines() == ["M README.md", "?? scratch.txt"]


def test_squash_merge_refuses_staged_changes_in_target(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    write(wt, "feature.txt", "f\n")
    svc.commit_all(wt, "feature")
    before = svc.head_oid(str(repo))
    write(repo, "README.md", "staged\n")
    git(repo, "add", "README.md")
    with pytest.raises(WorktreeDirty, match="staged"):
        svc.squash_merge(str(repo), branch, "main", "squash")
    assert svc.head_oid(str(repo)) == before
    assert git(repo, "status", "--porcelain") == "M  README.md"


def test_squash_merge_refuses_local_change_to_merged_file(
    svc: GitService, repo: Path, attempt: tuple
) -> None:
    _, branch, wt = attempt
    write(wt, "README.md", "from attempt\n")
    svc.commit_all(wt, "edit readme")
    write(repo, "README.md", "local, unstaged\n")
    before = svc.head_oid(str(repo))
    with pytest.raises(WorktreeDirty, match=r"README\.md"):
        svc.squash_merge(str(repo), branch, "main", "squash")
    assert (repo / "README.md").read_text() == "local, unstaged\n"
    assert svc.head_oid(str(repo)) == before


def test_squash_merge_refuses_diverged_and_empty(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    with pytest.raises(NothingToMerge):
        svc.squash_merge(str(repo), branch, "main", "squash")
    write(wt, "feature.txt", "f\n")
    svc.commit_all(wt, "feature")
    write(repo, "other.txt", "o\n")
    svc.commit_all(str(repo), "main moves")
    with pytest.raises(BranchesDiverged):
        svc.squash_merge(str(repo), branch, "main", "squash")
    with pytest.raises(BranchNotFound):
        svc.squash_merge(str(repo), branch, "does-not-exist", "squash")


def _conflicting_attempt(svc: GitService, repo: Path, wt: str) -> None:
    write(wt, "README.md", "attempt version\n")
    svc.commit_all(wt, "attempt edits readme")
    write(repo, "README.md", "main version\n")
    svc.commit_all(str(repo), "main edits readme")


def test_rebase_clean(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    write(wt, "feature.txt", "f\n")
    svc.commit_all(wt, "feature")
    write(repo, "other.txt", "o\n")
    svc.commit_all(str(repo), "main moves")
    head = svc.rebase(str(repo), wt, branch, "main")
    assert svc.ahead_behind(str(repo), branch, "main") == (1, 0)
    assert head == svc.head_oid(wt) and (Path(wt) / "other.txt").exists()


def test_rebase_conflict_is_abortable(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    _conflicting_attempt(svc, repo, wt)
    main_before = svc.head_oid(str(repo))
    branch_before = svc.head_oid(wt)
    with pytest.raises(MergeConflicts) as err:
        svc.rebase(str(repo), wt, branch, "main")
    assert err.value.to_error_data() == {
        "type": "merge_conflicts",
        "message": err.value.message,
        "op": "rebase",
    }
    assert err.value.files == ["README.md"]
    state = svc.conflict_state(wt)
    assert state == {
        "is_rebase_in_progress": True,
        "conflict_op": "rebase",
        "conflicted_files": ["README.md"],
    }
    st = svc.branch_status(str(repo), wt, branch, "main")
    assert st["is_rebase_in_progress"] and st["conflict_op"] == "rebase"
    assert st["conflicted_files"] == ["README.md"]
    with pytest.raises(RebaseInProgress) as again:
        svc.rebase(str(repo), wt, branch, "main")
    assert again.value.to_error_data() == {"type": "rebase_in_progress"}
    with pytest.raises(RebaseInProgress):
        svc.commit_all(wt, "no")
    # the main repository is untouched
    assert svc.head_oid(str(repo)) == main_before
    assert (repo / "README.md").read_text() == "main version\n"
    assert git(repo, "status", "--porcelain") == ""
    svc.abort_conflicts(wt)
    assert svc.conflict_state(wt)["conflict_op"] is None
    assert svc.head_oid(wt) == branch_before
    assert (Path(wt) / "README.md").read_text() == "attempt version\n"
    svc.abort_conflicts(wt)  # nothing in progress: a no-op
    git(wt, "fsck", "--no-progress")


def test_abort_merge_conflict(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, _, wt = attempt
    _conflicting_attempt(svc, repo, wt)
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@x", "merge", "main"],
        cwd=wt,
        capture_output=True,
        check=False,
    )
    assert svc.conflict_state(wt)["conflict_op"] == "merge"
    svc.abort_conflicts(wt)
    assert svc.conflict_state(wt) == {
        "is_rebase_in_progress": False,
        "conflict_op": None,
        "conflicted_files": [],
    }


def test_rebase_onto_other_base_and_bad_input(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    git(repo, "branch", "develop")
    write(wt, "feature.txt", "f\n")
    svc.commit_all(wt, "feature")
    with pytest.raises(BranchNotFound, match="nope"):
        svc.rebase(str(repo), wt, branch, "nope")
    with pytest.raises(InvalidBranchName):
        svc.rebase(str(repo), wt, branch, "main; touch pwned")
    write(wt, "feature.txt", "dirty\n")
    with pytest.raises(WorktreeDirty):
        svc.rebase(str(repo), wt, branch, "develop", "main")
    git(wt, "checkout", "--", "feature.txt")
    svc.rebase(str(repo), wt, branch, "develop", "main")
    assert svc.ahead_behind(str(repo), branch, "develop") == (1, 0)
    assert not (Path(wt) / "pwned").exists() and not (repo / "pwned").exists()


def test_rename_branch(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    assert svc.rename_branch(str(repo), branch, "vk/renamed", wt) == "vk/renamed"
    assert svc.current_branch(wt) == "vk/renamed"  # the worktree follows
    assert not svc.branch_exists(str(repo), branch)
    with pytest.raises(BranchExists):
        svc.rename_branch(str(repo), "vk/renamed", "main")
    for bad in ["", "  ", "-rf", "a b", "x;rm -rf /", "$(touch pwned)", "a..b", "a~1", "`id`", "x|y", "HEAD"]:
        with pytest.raises(InvalidBranchName):
            svc.rename_branch(str(repo), "vk/renamed", bad)
    with pytest.raises(BranchNotFound):
        svc.rename_branch(str(repo), "nope", "fine")
    assert not (repo / "pwned").exists()


def test_rename_refused_during_rebase(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, wt = attempt
    _conflicting_attempt(svc, repo, wt)
    with pytest.raises(MergeConflicts):
        svc.rebase(str(repo), wt, branch, "main")
    with pytest.raises(RebaseInProgress):
        svc.rename_branch(str(repo), branch, "vk/other", wt)


def test_commit_info_and_compare(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, _, wt = attempt
    base = svc.head_oid(wt)
    write(wt, "a.txt", "a\n")
    sha = svc.commit_all(wt, "Add a\n\nlonger body")
    assert svc.commit_info(str(repo), sha) == {"sha": sha, "subject": "Add a"}
    cmp = svc.commit_compare(wt, base)
    assert cmp == {
        "head_oid": sha,
        "target_oid": base,
        "ahead_from_head": 1,
        "behind_from_head": 0,
        "is_linear": True,
    }
    with pytest.raises(CommitNotFound):
        svc.commit_info(str(repo), "deadbeef" * 5)
    with pytest.raises(CommitNotFound):
        svc.commit_info(str(repo), "HEAD~1; rm -rf /")


def test_delete_file(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, _, wt = attempt
    sha = svc.delete_file(wt, "src/app.py")
    assert not (Path(wt) / "src/app.py").exists()
    assert "src/app.py" not in pygit2.Repository(wt)[sha].peel(pygit2.Commit).tree
    assert svc.is_clean(wt)
    assert (repo / "src/app.py").exists()  # the main checkout keeps its copy


@pytest.mark.parametrize("bad", ["../repo/README.md", "/etc/passwd", "src/../../x", ".git/config", "", "~/x"])
def test_delete_file_rejects_escaping_paths(svc: GitService, repo: Path, attempt: tuple, bad: str) -> None:
    _, _, wt = attempt
    with pytest.raises(InvalidPath):
        svc.delete_file(wt, bad)
    assert (repo / "README.md").exists() and (Path(wt) / ".git").exists()


def test_delete_file_refuses_symlinked_dir_out(
    svc: GitService, repo: Path, attempt: tuple, tmp_path: Path
) -> None:
    _, _, wt = attempt
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    os.symlink(outside, os.path.join(wt, "link"))
    with pytest.raises(InvalidPath):
        svc.delete_file(wt, "link/precious.txt")
    assert (outside / "precious.txt").exists()
    with pytest.raises(InvalidPath):
        svc.delete_file(wt, "missing.txt")


def test_change_target_branch_counts(svc: GitService, repo: Path, attempt: tuple) -> None:
    _, branch, _ = attempt
    git(repo, "branch", "develop")
    write(repo, "m.txt", "m\n")
    svc.commit_all(str(repo), "main")
    assert svc.ahead_behind(str(repo), branch, "main") == (0, 1)
    assert svc.ahead_behind(str(repo), branch, "develop") == (0, 0)
    with pytest.raises(BranchNotFound):
        svc.ahead_behind(str(repo), branch, "gone")
