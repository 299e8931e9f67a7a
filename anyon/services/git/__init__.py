"""The git layer: repository operations (GitService) and the Diff builder, on top of pygit2.

Owns everything done to repositories and their checkouts, not knowing about attempts' rows. Modules:

- ``service`` — :class:`GitService`, the facade the rest of the server calls; it holds the locks and
  hands each call to ``branches`` (repositories; list, create, delete, rename branches), ``status``
  (conflicts in progress, uncommitted counts, ahead/behind, BranchStatus), ``attempt_diff`` (an attempt's
  diffs), ``commits`` (commit, delete a file, reset, read a commit), ``merge`` (squash merge) and
  ``rebase`` (rebase, abort a stopped operation);
- ``diff`` — the Diff objects of the spec built from a libgit2 diff, and the content budget;
- ``repo`` — opening repositories without upward search, branch and path checks, branch/sha lookups,
  the identity, the git CLI; ``refnames`` (git's ref-name rules), ``locks`` (per-path locks),
  ``errors`` (the typed failures);
- ``worktrees`` — :class:`WorktreeManager`, the facade for attempt worktrees over ``worktree_names``
  (branch and folder names), ``managed_dir`` (which paths are inside the base dir; the locks),
  ``worktree_creation`` (reserve, create, health, recreate), ``worktree_removal`` (everything that
  deletes: one worktree, orphans, expired ones) and ``worktree_files`` (writing into a worktree without
  following links);
- ``isolation`` — the attempt's own repository in cloud mode and importing its commits as data;
- ``checkouts_ahead``, ``ready_worktrees`` — checkouts made ahead and the ready worktrees of local mode;
- ``remote_tips`` — where a fetched copy of a pushed branch is kept (never its push lease), counting
  a branch against the newest remote copy, and which remote a remote-tracking name belongs to;
- ``paths`` — where project repositories may live;
- ``file_search`` — the @-file search index.

May import ``errors`` and ``project_pools`` only: no database, no runner, no other services package,
so every other package can build on it.
"""

from .diff import DEFAULT_CONTENT_BUDGET_BYTES, ContentBudget, diff_key
from .errors import (
    BranchesDiverged,
    BranchExists,
    BranchNotFound,
    CommitNotFound,
    GitCommandFailed,
    GitServiceError,
    InvalidBranchName,
    InvalidPath,
    MergeConflicts,
    NotARepository,
    NothingToMerge,
    RebaseInProgress,
    WorktreeDirty,
    WorktreeError,
)
from .locks import PathLocks
from .repo import open_repo, safe_relative_path, validate_branch_name
from .service import GitService

__all__ = [
    "DEFAULT_CONTENT_BUDGET_BYTES",
    "BranchExists",
    "BranchNotFound",
    "BranchesDiverged",
    "CommitNotFound",
    "ContentBudget",
    "GitCommandFailed",
    "GitService",
    "GitServiceError",
    "InvalidBranchName",
    "InvalidPath",
    "MergeConflicts",
    "NotARepository",
    "NothingToMerge",
    "PathLocks",
    "RebaseInProgress",
    "WorktreeDirty",
    "WorktreeError",
    "diff_key",
    "open_repo",
    "safe_relative_path",
    "validate_branch_name",
]
