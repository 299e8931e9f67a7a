"""The diffs of an attempt: against the merge-base with its target (whole, one path, a batch of paths),
and of one merged commit. Built on :mod:`anyon.services.git.diff`, which turns a libgit2 diff into the
Diff objects of the spec.

With the worktree on disk the attempt is read from it (uncommitted and untracked files included); without
it, from the committed branch tip. Every function takes the :class:`ContentBudget` to charge file contents
to; :class:`~anyon.services.git.service.GitService` makes a fresh one per call unless the caller (a live
diff stream) passes its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pygit2

from .diff import ContentBudget, iter_diffs, tree_diff, worktree_diff
from .errors import BranchNotFound
from .repo import commit_by_sha, open_repo, resolve_branch, safe_relative_path


def _attempt_diff(
    repo_path: str, worktree_path: str | None, branch: str, target_branch: str
) -> tuple[pygit2.Repository, pygit2.Diff, str | None]:
    repo = open_repo(repo_path)
    target = resolve_branch(repo, target_branch)
    if worktree_path and Path(worktree_path).is_dir():
        wrepo = open_repo(worktree_path)
        head = wrepo.head.peel(pygit2.Commit) if not wrepo.head_is_unborn else None
        if head is None:
            raise BranchNotFound(branch)
        base_oid = wrepo.merge_base(head.id, target.id)
        tree_id = base_oid if base_oid else wrepo.TreeBuilder().write()  # unrelated: diff from empty
        base_tree = wrepo[tree_id].peel(pygit2.Tree)
        return wrepo, worktree_diff(wrepo, base_tree), str(wrepo.workdir)
    tip = resolve_branch(repo, branch)
    base_oid = repo.merge_base(tip.id, target.id)
    old_tree = repo[base_oid].peel(pygit2.Tree) if base_oid else None
    return repo, tree_diff(repo, old_tree, tip.tree), None


def diff(
    repo_path: str,
    worktree_path: str | None,
    branch: str,
    target_branch: str,
    stats_only: bool,
    budget: ContentBudget,
) -> list[dict[str, Any]]:
    """Diff[] of the attempt against the merge-base with its target, uncommitted and untracked included.

    Without a worktree on disk, the committed branch tip is compared instead.
    """
    repo, d, workdir = _attempt_diff(repo_path, worktree_path, branch, target_branch)
    return list(iter_diffs(repo, d, workdir=workdir, stats_only=stats_only, budget=budget))


def diff_path(
    repo_path: str,
    worktree_path: str | None,
    branch: str,
    target_branch: str,
    path: str,
    stats_only: bool,
    budget: ContentBudget,
) -> dict[str, Any] | None:
    """The Diff touching ``path`` (as new path, or as the old path of a rename), or None if unchanged.

    Called by the live diff stream once per changed path; only that file's patch and contents are
    built. The caller keys the result with :func:`anyon.services.git.diff_key` and sends ``remove`` for
    ``path`` when the result is None or keyed elsewhere.
    """
    rel = safe_relative_path(path)
    repo, d, workdir = _attempt_diff(repo_path, worktree_path, branch, target_branch)
    for item in iter_diffs(repo, d, workdir=workdir, stats_only=stats_only, budget=budget, only_path=rel):
        return item
    return None


def diff_paths(
    repo_path: str,
    worktree_path: str | None,
    branch: str,
    target_branch: str,
    paths: list[str],
    stats_only: bool,
    budget: ContentBudget,
) -> dict[str, dict[str, Any] | None]:
    """:meth:`diff_path` for a debounced batch of changed paths, sharing one status scan."""
    wanted = {safe_relative_path(p): p for p in paths}
    result: dict[str, dict[str, Any] | None] = dict.fromkeys(paths)
    repo, d, workdir = _attempt_diff(repo_path, worktree_path, branch, target_branch)
    for rel, original in wanted.items():
        for item in iter_diffs(repo, d, workdir=workdir, stats_only=stats_only, budget=budget, only_path=rel):
            result[original] = item
            break
    return result


def diff_commit(repo_path: str, sha: str, stats_only: bool, budget: ContentBudget) -> list[dict[str, Any]]:
    """Diff[] of one commit against its first parent (the stream's "merged" mode)."""
    repo = open_repo(repo_path)
    commit = commit_by_sha(repo, sha)
    parent = commit.parents[0].tree if commit.parents else None
    d = tree_diff(repo, parent, commit.tree)
    return list(iter_diffs(repo, d, workdir=None, stats_only=stats_only, budget=budget))
