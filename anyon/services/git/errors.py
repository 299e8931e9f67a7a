"""Typed failures of the git layer.

Routes map these to the envelope: most become soft errors (``success:false`` with ``message``), the rebase
ones carry the spec's typed ``error_data`` (``to_error_data()``), and a few are 409/500 kinds. Every message
names the branch, path or file involved so that the user can act on it without reading server logs.
"""

from __future__ import annotations

from typing import Any

ConflictOpName = str  # "rebase" | "merge" | "cherry_pick" | "revert"


class GitServiceError(Exception):
    """Base of every error the git layer raises on purpose (never a bare pygit2/OS error)."""

    kind = "GitServiceError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_error_data(self) -> dict[str, Any] | None:
        """The typed ``error_data`` object of spec §1.5, or None when the error is a plain soft error."""
        return None


class NotARepository(GitServiceError):
    kind = "NotARepository"


class BranchNotFound(GitServiceError):
    kind = "BranchNotFound"

    def __init__(self, branch: str) -> None:
        super().__init__(f"Branch '{branch}' does not exist in the repository")
        self.branch = branch


class BranchExists(GitServiceError):
    kind = "BranchExists"

    def __init__(self, branch: str) -> None:
        super().__init__(f"Branch '{branch}' already exists")
        self.branch = branch


class InvalidBranchName(GitServiceError):
    kind = "InvalidBranchName"


class InvalidPath(GitServiceError):
    kind = "InvalidPath"


class WorktreeDirty(GitServiceError):
    kind = "WorktreeDirty"

    def __init__(self, message: str, files: list[str] | None = None) -> None:
        super().__init__(message)
        self.files = files or []


class BranchesDiverged(GitServiceError):
    kind = "BranchesDiverged"


class NothingToMerge(GitServiceError):
    kind = "NothingToMerge"


class RebaseInProgress(GitServiceError):
    kind = "RebaseInProgress"

    def __init__(self, message: str = "A rebase is already in progress in this worktree") -> None:
        super().__init__(message)

    def to_error_data(self) -> dict[str, Any]:
        return {"type": "rebase_in_progress"}


class MergeConflicts(GitServiceError):
    kind = "MergeConflicts"

    def __init__(self, op: ConflictOpName, message: str, files: list[str] | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.files = files or []

    def to_error_data(self) -> dict[str, Any]:
        return {"type": "merge_conflicts", "message": self.message, "op": self.op}


class CommitNotFound(GitServiceError):
    kind = "CommitNotFound"


class WorktreeError(GitServiceError):
    """A worktree could not be created, recreated or removed."""

    kind = "WorktreeError"


class GitCommandFailed(GitServiceError):
    """The git CLI (used only where libgit2 falls short) exited non-zero for a reason we do not model."""

    kind = "GitCommandFailed"
