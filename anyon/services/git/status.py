"""What state a worktree is in: a conflicted operation mid-way, uncommitted and untracked counts, how far
a branch is ahead of or behind its target or its pushed copy, and the BranchStatus built from all of them.

Read-only: nothing here writes to a repository, so nothing takes a lock. The three helpers at the top
(:func:`conflict_op`, :func:`conflicted_files`, :func:`status_counts`) are also the guards the writing
modules (``branches``, ``commits``, ``rebase``) check before they touch a worktree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import BranchType, FileStatus, RepositoryState

from .repo import open_repo, resolve_branch


def conflict_op(wrepo: pygit2.Repository) -> str | None:
    """The operation that left this worktree mid-way, read from git's own state files."""
    gitdir = Path(wrepo.path)
    if (gitdir / "rebase-merge").is_dir() or (gitdir / "rebase-apply" / "rebasing").exists():
        return "rebase"
    if (gitdir / "MERGE_HEAD").exists():
        return "merge"
    if (gitdir / "CHERRY_PICK_HEAD").exists():
        return "cherry_pick"
    if (gitdir / "REVERT_HEAD").exists():
        return "revert"
    state = wrepo.state()
    if state in (RepositoryState.REBASE, RepositoryState.REBASE_INTERACTIVE, RepositoryState.REBASE_MERGE):
        return "rebase"
    return None


def conflicted_files(wrepo: pygit2.Repository) -> list[str]:
    conflicts = wrepo.index.conflicts
    if conflicts is None:
        return []
    files = set()
    for ancestor, ours, theirs in conflicts:
        for entry in (ours, theirs, ancestor):
            if entry is not None:
                files.add(entry.path)
                break
    return sorted(files)


def status_counts(wrepo: pygit2.Repository) -> tuple[int, int]:
    """(uncommitted tracked changes, untracked files); ignored files never count."""
    uncommitted = untracked = 0
    for flags in wrepo.status(untracked_files="all").values():
        if flags & FileStatus.IGNORED:
            continue
        if flags == FileStatus.WT_NEW:
            untracked += 1
        elif flags != FileStatus.CURRENT:
            uncommitted += 1
    return uncommitted, untracked


def head_oid(worktree_path: str) -> str | None:
    wrepo = open_repo(worktree_path)
    return None if wrepo.head_is_unborn else str(wrepo.head.target)


def is_clean(worktree_path: str, include_untracked: bool = True) -> bool:
    uncommitted, untracked = status_counts(open_repo(worktree_path))
    return uncommitted == 0 and (untracked == 0 or not include_untracked)


def ahead_behind(repo_path: str, branch: str, target_branch: str) -> tuple[int, int]:
    """(commits on ``branch`` not on the target, commits on the target not on ``branch``)."""
    repo = open_repo(repo_path)
    a = resolve_branch(repo, branch)
    b = resolve_branch(repo, target_branch)
    ahead, behind = repo.ahead_behind(a.id, b.id)
    return int(ahead), int(behind)


def remote_ahead_behind(repo_path: str, branch: str, remote: str = "origin") -> tuple[int, int] | None:
    """The local branch against its pushed ``<remote>/<branch>``; None when never pushed."""
    repo = open_repo(repo_path)
    local = resolve_branch(repo, branch)
    pushed = repo.lookup_branch(f"{remote}/{branch}", BranchType.REMOTE)
    if pushed is None:
        return None
    ahead, behind = repo.ahead_behind(local.id, pushed.peel(pygit2.Commit).id)
    return int(ahead), int(behind)


def conflict_state(worktree_path: str) -> dict[str, Any]:
    """``{is_rebase_in_progress, conflict_op, conflicted_files}`` of a worktree."""
    wrepo = open_repo(worktree_path)
    op = conflict_op(wrepo)
    return {
        "is_rebase_in_progress": op == "rebase",
        "conflict_op": op,
        "conflicted_files": conflicted_files(wrepo),
    }


def branch_status(
    repo_path: str, worktree_path: str | None, branch: str, target_branch: str
) -> dict[str, Any]:
    """Every BranchStatus field except ``merges`` (the caller adds it from the database).

    ``remote_commits_*`` are null; the caller fills them from :meth:`remote_ahead_behind` when the
    newest merge is an open PR. Without a worktree on disk the worktree fields are null.
    """
    repo = open_repo(repo_path)
    target = resolve_branch(repo, target_branch)
    status: dict[str, Any] = {
        "commits_behind": None,
        "commits_ahead": None,
        "has_uncommitted_changes": None,
        "head_oid": None,
        "uncommitted_count": None,
        "untracked_count": None,
        "target_branch_name": target_branch,
        "remote_commits_behind": None,
        "remote_commits_ahead": None,
        "is_rebase_in_progress": False,
        "conflict_op": None,
        "conflicted_files": [],
    }
    wrepo = open_repo(worktree_path) if worktree_path and Path(worktree_path).exists() else None
    if wrepo is not None and not wrepo.head_is_unborn:
        head = wrepo.head.peel(pygit2.Commit)
        op = conflict_op(wrepo)
        if op == "rebase" or wrepo.head_is_detached:
            # mid-rebase HEAD is detached on a half-replayed commit: count the branch ref instead
            head = resolve_branch(repo, branch)
        uncommitted, untracked = status_counts(wrepo)
        status.update(
            head_oid=str(wrepo.head.target),
            uncommitted_count=uncommitted,
            untracked_count=untracked,
            has_uncommitted_changes=(uncommitted + untracked) > 0,
            is_rebase_in_progress=op == "rebase",
            conflict_op=op,
            conflicted_files=conflicted_files(wrepo),
        )
    else:
        head = resolve_branch(repo, branch)
    ahead, behind = repo.ahead_behind(head.id, target.id)
    status["commits_ahead"], status["commits_behind"] = int(ahead), int(behind)
    return status
