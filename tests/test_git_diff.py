"""Attempt diffs (spec §2.4) on real worktrees: committed, staged, unstaged, untracked, renames, sizes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from anyon.services.git import BranchNotFound, ContentBudget, GitService, InvalidPath, diff_key
from anyon.services.git.worktrees import WorktreeManager

ATTEMPT = "aa11bb22-0000-4000-8000-000000000002"
KEYS = {
    "change",
    "oldPath",
    "newPath",
    "oldContent",
    "newContent",
    "contentOmitted",
    "additions",
    "deletions",
}


def write(root: Path | str, rel: str, text: str | bytes) -> None:
    p = Path(root) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[GitService, str, str, str]:
    svc = GitService()
    repo = tmp_path / "repo"
    svc.init_repo(str(repo))
    write(repo, "keep.txt", "".join(f"line {i}\n" for i in range(40)))
    write(repo, "edit.txt", "one\ntwo\nthree\n")
    write(repo, "gone.txt", "bye\n")
    write(repo, ".gitignore", "*.log\nbuild/\n")
    svc.commit_all(str(repo), "initial")
    wm = WorktreeManager(str(tmp_path / "wt"))
    branch = wm.branch_name("vk", ATTEMPT, "Diff me")
    path = wm.worktree_path(ATTEMPT, "Diff me")
    wm.create(str(repo), branch, path, "main")
    return svc, str(repo), path, branch


def by_key(diffs: list[dict]) -> dict[str, dict]:
    return {diff_key(d): d for d in diffs}


def test_diff_covers_committed_staged_unstaged_untracked_and_renames(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    write(wt, "committed.txt", "c\n")
    svc.commit_all(wt, "committed")
    write(wt, "edit.txt", "one\nTWO\nthree\nfour\n")  # unstaged modification
    write(wt, "staged.txt", "s\n")
    subprocess.run(["git", "add", "staged.txt"], cwd=wt, check=True)
    write(wt, "fresh/dir/untracked.txt", "u1\nu2\n")
    write(wt, "noise.log", "ignored\n")
    write(wt, "build/out.txt", "ignored dir\n")
    os.remove(os.path.join(wt, "gone.txt"))
    os.rename(os.path.join(wt, "keep.txt"), os.path.join(wt, "moved.txt"))  # not staged: still a rename
    diffs = svc.diff(repo, wt, branch, "main")
    assert all(set(d) == KEYS for d in diffs)
    got = by_key(diffs)
    assert set(got) == {
        "committed.txt",
        "edit.txt",
        "staged.txt",
        "fresh/dir/untracked.txt",
        "gone.txt",
        "moved.txt",
    }
    assert got["committed.txt"]["change"] == "added" and got["committed.txt"]["oldPath"] is None
    edit = got["edit.txt"]
    assert (edit["change"], edit["additions"], edit["deletions"]) == ("modified", 2, 1)
    assert edit["oldContent"] == "one\ntwo\nthree\n" and edit["newContent"] == "one\nTWO\nthree\nfour\n"
    assert got["staged.txt"]["change"] == "added"
    untracked = got["fresh/dir/untracked.txt"]
    assert (untracked["change"], untracked["additions"], untracked["newContent"]) == ("added", 2, "u1\nu2\n")
    gone = got["gone.txt"]
    assert (gone["change"], gone["newPath"], gone["oldContent"], gone["deletions"]) == (
        "deleted",
        None,
        "bye\n",
        1,
    )
    moved = got["moved.txt"]
    assert (moved["change"], moved["oldPath"], moved["newPath"]) == ("renamed", "keep.txt", "moved.txt")
    assert moved["additions"] == 0 and moved["deletions"] == 0


def test_diff_is_against_merge_base_not_target_tip(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    write(repo, "main_only.txt", "m\n")
    svc.commit_all(repo, "main moves on")
    write(wt, "mine.txt", "x\n")
    assert [diff_key(d) for d in svc.diff(repo, wt, branch, "main")] == ["mine.txt"]


def test_stats_only_and_budget(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    write(wt, "a.txt", "a" * 100 + "\n")
    write(wt, "b.txt", "b" * 100 + "\n")
    stats = svc.diff(repo, wt, branch, "main", stats_only=True)
    assert all(d["contentOmitted"] and d["oldContent"] is None and d["newContent"] is None for d in stats)
    assert sum(d["additions"] for d in stats) == 2
    budget = ContentBudget(150)
    full = svc.diff(repo, wt, branch, "main", budget=budget)
    assert [d["contentOmitted"] for d in full] == [False, True]  # the second no longer fits
    assert full[1]["additions"] == 1  # counts are still computed
    assert budget.remaining == 150 - 101


def test_binary_contents_are_omitted(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    write(wt, "blob.bin", bytes(range(256)) * 4)
    (d,) = svc.diff(repo, wt, branch, "main")
    assert d["change"] == "added" and d["contentOmitted"] and d["newContent"] is None


def test_permission_change(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    os.chmod(os.path.join(wt, "edit.txt"), 0o755)
    (d,) = svc.diff(repo, wt, branch, "main")
    assert d["change"] == "permissionChange" and d["newPath"] == "edit.txt"


def test_diff_path_one_file(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    write(wt, "edit.txt", "changed\n")
    write(wt, "other.txt", "o\n")
    os.rename(os.path.join(wt, "keep.txt"), os.path.join(wt, "moved.txt"))
    d = svc.diff_path(repo, wt, branch, "main", "edit.txt")
    assert d is not None and d["newContent"] == "changed\n"
    assert svc.diff_path(repo, wt, branch, "main", "gone.txt") is None  # unchanged
    assert svc.diff_path(repo, wt, branch, "main", "never-existed.txt") is None
    renamed = svc.diff_path(repo, wt, branch, "main", "keep.txt")  # the old side of a rename
    assert renamed is not None and diff_key(renamed) == "moved.txt"
    with pytest.raises(InvalidPath):
        svc.diff_path(repo, wt, branch, "main", "../x")


def test_diff_without_worktree_uses_branch_tip(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    write(wt, "c.txt", "c\n")
    write(wt, "uncommitted.txt", "u\n")
    subprocess.run(["git", "add", "c.txt"], cwd=wt, check=True)
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "c"], cwd=wt, check=True
    )
    assert [diff_key(d) for d in svc.diff(repo, None, branch, "main")] == ["c.txt"]
    with pytest.raises(BranchNotFound):
        svc.diff(repo, None, "vk/none", "main")


def test_diff_commit(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    write(wt, "edit.txt", "merged\n")
    svc.commit_all(wt, "edit")
    sha = svc.squash_merge(repo, branch, "main", "squash")
    (d,) = svc.diff_commit(repo, sha)
    assert (d["change"], d["newPath"], d["newContent"]) == ("modified", "edit.txt", "merged\n")


def test_diff_paths_batch(setup: tuple) -> None:
    svc, repo, wt, branch = setup
    write(wt, "edit.txt", "changed\n")
    write(wt, "new.txt", "n\n")
    got = svc.diff_paths(repo, wt, branch, "main", ["edit.txt", "new.txt", "keep.txt"])
    assert got["edit.txt"]["change"] == "modified" and got["new.txt"]["change"] == "added"
    assert got["keep.txt"] is None
