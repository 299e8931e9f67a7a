"""The git layer: repository operations (GitService) and the Diff builder, on top of pygit2.

Owns everything done to repositories and their checkouts, not knowing about attempts' rows: where
project repositories may live (``paths``), worktrees (``worktrees``), checkouts made ahead and the ready
worktrees of local mode (``checkouts_ahead``, ``ready_worktrees``), the @-file search index
(``file_search``), and the isolation of an untrusted checkout (``isolation``).

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
