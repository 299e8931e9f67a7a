"""GitService: branches, branch status, attempt diffs, commits, squash merge, rebase, conflicts.

The service knows nothing about the database: it takes repository paths, worktree paths and branch names
and returns plain dicts in the wire shape of the spec (``types.md`` §6 and §8). Callers fill in what only
the database knows (``BranchStatus.merges``, the merge row, the task status). All expected failures are
:class:`~anyon.services.git.errors.GitServiceError` subclasses.

This class is the one door the rest of the server uses; it holds the only state (the per-path locks and
the default content budget of a diff) and hands each call to the module that does the work:

- ``branches`` — is there a repository, make one, list/look up/create/delete/rename branches;
- ``status`` — a worktree's state: conflicts, uncommitted counts, ahead/behind, BranchStatus;
- ``attempt_diff`` — the diffs of an attempt and of one commit;
- ``commits`` — commit everything, delete a file as a commit, reset, read a commit;
- ``merge`` — the squash merge into the target branch;
- ``rebase`` — rebase onto a new base, abort a stopped operation.

libgit2 (pygit2) does the work everywhere except rebase and aborting a conflicted operation, which use the
git CLI (see :func:`anyon.services.git.rebase.rebase` for why).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import attempt_diff, branches, commits, merge, rebase, status
from .diff import ContentBudget
from .locks import PathLocks


class GitService:
    """Stateless apart from per-repository locks; safe to share between threads."""

    def __init__(self, content_budget_bytes: int = 200 * 1024 * 1024) -> None:
        self.content_budget_bytes = content_budget_bytes
        self.locks = PathLocks()

    # ----------------------------------------------------------------------------------------- repository

    def is_repository(self, path: str) -> bool:
        return branches.is_repository(path)

    def init_repo(self, path: str) -> None:
        """``git init`` with ``main`` as the initial branch when ``path`` has no ``.git`` (idempotent)."""
        branches.init_repo(path)

    def ensure_initial_commit(self, repo_path: str) -> str:
        """Give an empty repository a first (empty) commit on ``main`` so attempts can branch from it."""
        return branches.ensure_initial_commit(repo_path)

    # ------------------------------------------------------------------------------------------- branches

    def branches(self, repo_path: str) -> list[dict[str, Any]]:
        """GitBranch[]: local then remote branches; the current one first, then newest commit first."""
        return branches.branches(repo_path)

    def branch_exists(self, repo_path: str, name: str) -> bool:
        return branches.branch_exists(repo_path, name)

    def branch_commit_time(self, repo_path: str, name: str) -> dt.datetime | None:
        """When the tip of the local branch ``name`` was committed (UTC); None when there is none."""
        return branches.branch_commit_time(repo_path, name)

    def current_branch(self, repo_path: str) -> str | None:
        return branches.current_branch(repo_path)

    def create_branch(self, repo_path: str, name: str, base_branch: str) -> str:
        """Create ``name`` at the tip of ``base_branch``; returns the commit sha."""
        return branches.create_branch(self.locks, repo_path, name, base_branch)

    def delete_branch(self, repo_path: str, name: str) -> None:
        branches.delete_branch(repo_path, name)

    def rename_branch(self, repo_path: str, old: str, new: str, worktree_path: str | None = None) -> str:
        """Rename a local branch; worktrees that have it checked out follow the new name."""
        return branches.rename_branch(self.locks, repo_path, old, new, worktree_path)

    # ------------------------------------------------------------------------------------------- status

    def head_oid(self, worktree_path: str) -> str | None:
        return status.head_oid(worktree_path)

    def reset_hard(self, worktree_path: str, oid: str) -> None:
        """``git reset --hard <oid>`` in the worktree (a retry goes back to before the retried process)."""
        commits.reset_hard(worktree_path, oid)

    def is_clean(self, worktree_path: str, include_untracked: bool = True) -> bool:
        return status.is_clean(worktree_path, include_untracked)

    def ahead_behind(self, repo_path: str, branch: str, target_branch: str) -> tuple[int, int]:
        """(commits on ``branch`` not on the target, commits on the target not on ``branch``)."""
        return status.ahead_behind(repo_path, branch, target_branch)

    def remote_ahead_behind(
        self, repo_path: str, branch: str, remote: str = "origin"
    ) -> tuple[int, int] | None:
        """The local branch against its pushed ``<remote>/<branch>``; None when never pushed."""
        return status.remote_ahead_behind(repo_path, branch, remote)

    def conflict_state(self, worktree_path: str) -> dict[str, Any]:
        """``{is_rebase_in_progress, conflict_op, conflicted_files}`` of a worktree."""
        return status.conflict_state(worktree_path)

    def branch_status(
        self, repo_path: str, worktree_path: str | None, branch: str, target_branch: str
    ) -> dict[str, Any]:
        """Every BranchStatus field except ``merges`` (the caller adds it from the database)."""
        return status.branch_status(repo_path, worktree_path, branch, target_branch)

    # --------------------------------------------------------------------------------------------- diffs

    def _budget(self, budget: ContentBudget | None) -> ContentBudget:
        return budget if budget is not None else ContentBudget(self.content_budget_bytes)

    def diff(
        self,
        repo_path: str,
        worktree_path: str | None,
        branch: str,
        target_branch: str,
        stats_only: bool = False,
        budget: ContentBudget | None = None,
    ) -> list[dict[str, Any]]:
        """Diff[] of the attempt against the merge-base with its target, uncommitted and untracked included.

        Without a worktree on disk, the committed branch tip is compared instead.
        """
        return attempt_diff.diff(
            repo_path, worktree_path, branch, target_branch, stats_only, self._budget(budget)
        )

    def diff_path(
        self,
        repo_path: str,
        worktree_path: str | None,
        branch: str,
        target_branch: str,
        path: str,
        stats_only: bool = False,
        budget: ContentBudget | None = None,
    ) -> dict[str, Any] | None:
        """The Diff touching ``path`` (as new path, or as the old path of a rename), or None if unchanged."""
        return attempt_diff.diff_path(
            repo_path, worktree_path, branch, target_branch, path, stats_only, self._budget(budget)
        )

    def diff_paths(
        self,
        repo_path: str,
        worktree_path: str | None,
        branch: str,
        target_branch: str,
        paths: list[str],
        stats_only: bool = False,
        budget: ContentBudget | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        """:meth:`diff_path` for a debounced batch of changed paths, sharing one status scan."""
        return attempt_diff.diff_paths(
            repo_path, worktree_path, branch, target_branch, paths, stats_only, self._budget(budget)
        )

    def diff_commit(
        self, repo_path: str, sha: str, stats_only: bool = False, budget: ContentBudget | None = None
    ) -> list[dict[str, Any]]:
        """Diff[] of one commit against its first parent (the stream's "merged" mode)."""
        return attempt_diff.diff_commit(repo_path, sha, stats_only, self._budget(budget))

    # ------------------------------------------------------------------------------------------- commits

    def commit_all(self, worktree_path: str, message: str) -> str | None:
        """Stage everything (``git add -A``) and commit; the new sha, or None when nothing changed."""
        return commits.commit_all(self.locks, worktree_path, message)

    def commit_info(self, repo_path: str, sha: str) -> dict[str, str]:
        return commits.commit_info(repo_path, sha)

    def commit_compare(self, worktree_path: str, sha: str) -> dict[str, Any]:
        """CommitCompareResult of the worktree HEAD against ``sha``."""
        return commits.commit_compare(worktree_path, sha)

    def delete_file(self, worktree_path: str, file_path: str, message: str | None = None) -> str | None:
        """Delete one file from disk and the index and commit that; returns the commit sha."""
        return commits.delete_file(self.locks, worktree_path, file_path, message)

    # -------------------------------------------------------------------------------------------- merge

    def squash_merge(
        self, repo_path: str, branch: str, target_branch: str, message: str, *, update_linked: bool = True
    ) -> str:
        """Squash ``branch`` into the local ``target_branch``; returns the new commit sha."""
        return merge.squash_merge(
            self.locks, repo_path, branch, target_branch, message, update_linked=update_linked
        )

    # ------------------------------------------------------------------------------------------- rebase

    def rebase(
        self,
        repo_path: str,
        worktree_path: str,
        branch: str,
        new_base_branch: str,
        old_base_branch: str | None = None,
    ) -> str:
        """``git rebase --onto <new base> <old base>`` in the attempt worktree; returns the new HEAD sha."""
        return rebase.rebase(self.locks, repo_path, worktree_path, branch, new_base_branch, old_base_branch)

    def rebase_bases(
        self,
        repo_path: str,
        worktree_path: str,
        branch: str,
        new_base_branch: str,
        old_base_branch: str | None = None,
    ) -> tuple[str, str]:
        """Check that ``worktree_path`` can be rebased; the (new, old) base commit ids to pass to git."""
        return rebase.rebase_bases(repo_path, worktree_path, branch, new_base_branch, old_base_branch)

    def abort_conflicts(self, worktree_path: str) -> None:
        """Abort whatever rebase, merge, cherry-pick or revert is in progress (no-op when none is)."""
        rebase.abort_conflicts(self.locks, worktree_path)
