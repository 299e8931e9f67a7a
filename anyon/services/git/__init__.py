"""The git layer: repository operations (GitService) and the Diff builder, on top of pygit2."""

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
    RebaseInProgress,
    WorktreeDirty,
    WorktreeError,
)
from .locks import PathLocks
from .repo import open_repo, safe_relative_path, validate_branch_name
from .service import GitService, NothingToMerge

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
