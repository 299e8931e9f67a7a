"""Commits in an attempt's worktree: commit everything, delete one file as a commit, reset to an earlier
commit, and read a commit (its subject; how the worktree's HEAD compares with it).

Committing and deleting hold the worktree's lock and are refused while a rebase, merge, cherry-pick or
revert is stopped there, so a commit never lands in the middle of someone's conflict resolution.
"""

from __future__ import annotations

import os
from typing import Any

import pygit2
from pygit2.enums import ResetMode

from .errors import BranchNotFound, GitServiceError, InvalidPath, MergeConflicts, RebaseInProgress
from .locks import PathLocks
from .repo import commit_by_sha, is_within, open_repo, safe_relative_path, signature
from .status import conflict_op


def commit_all(locks: PathLocks, worktree_path: str, message: str) -> str | None:
    """Stage everything (``git add -A``: deletions too, ignored files skipped) and commit.

    Returns the new sha, or None when there was nothing to commit.
    """
    wrepo = open_repo(worktree_path)
    op = conflict_op(wrepo)
    if op is not None:
        if op == "rebase":
            raise RebaseInProgress("Cannot commit while a rebase is in progress in this worktree")
        raise MergeConflicts(op, f"Cannot commit while a {op.replace('_', '-')} is in progress", [])
    with locks.hold(worktree_path):
        index = wrepo.index
        index.add_all()
        index.write()
        tree = index.write_tree()
        parents = [] if wrepo.head_is_unborn else [wrepo.head.target]
        if parents and wrepo[parents[0]].peel(pygit2.Commit).tree_id == tree:
            return None
        sig = signature(wrepo)
        return str(wrepo.create_commit("HEAD", sig, sig, message, tree, parents))


def commit_info(repo_path: str, sha: str) -> dict[str, str]:
    commit = commit_by_sha(open_repo(repo_path), sha)
    subject = commit.message.splitlines()[0] if commit.message else ""
    return {"sha": str(commit.id), "subject": subject}


def commit_compare(worktree_path: str, sha: str) -> dict[str, Any]:
    """CommitCompareResult of the worktree HEAD against ``sha``."""
    wrepo = open_repo(worktree_path)
    target = commit_by_sha(wrepo, sha)
    if wrepo.head_is_unborn:
        raise BranchNotFound("HEAD")
    head = wrepo.head.target
    ahead, behind = wrepo.ahead_behind(head, target.id)
    return {
        "head_oid": str(head),
        "target_oid": sha,
        "ahead_from_head": int(ahead),
        "behind_from_head": int(behind),
        "is_linear": behind == 0,
    }


def delete_file(
    locks: PathLocks, worktree_path: str, file_path: str, message: str | None = None
) -> str | None:
    """Delete one file from disk and the index and commit that; returns the commit sha.

    Paths with ``..``, absolute paths, paths into ``.git`` and paths that resolve outside the worktree
    through a symlinked directory are refused before anything is touched.
    """
    rel = safe_relative_path(file_path)
    wrepo = open_repo(worktree_path)
    workdir = str(wrepo.workdir)
    full = os.path.join(workdir, rel)
    if not is_within(os.path.dirname(full), workdir):
        raise InvalidPath(f"File path '{file_path}' leads outside the worktree")
    if conflict_op(wrepo) is not None:
        raise RebaseInProgress("Cannot delete files while a conflicted operation is in progress")
    with locks.hold(worktree_path):
        index = wrepo.index
        tracked = rel in index
        exists = os.path.lexists(full)
        if not tracked and not exists:
            raise InvalidPath(f"File '{rel}' does not exist in the worktree")
        if os.path.isdir(full) and not os.path.islink(full):
            raise InvalidPath(f"'{rel}' is a directory, not a file")
        if exists:
            os.unlink(full)
        if not tracked:
            return None
        index.remove(rel)
        index.write()
        tree = index.write_tree()
        sig = signature(wrepo)
        parents = [] if wrepo.head_is_unborn else [wrepo.head.target]
        return str(wrepo.create_commit("HEAD", sig, sig, message or f"Delete {rel}", tree, parents))


def reset_hard(worktree_path: str, oid: str) -> None:
    """``git reset --hard <oid>`` in the worktree (a retry goes back to before the retried process)."""
    try:
        open_repo(worktree_path).reset(pygit2.Oid(hex=oid), ResetMode.HARD)
    except (pygit2.GitError, ValueError, KeyError) as exc:
        raise GitServiceError(f"Cannot reset {worktree_path} to {oid}: {exc}") from None
