"""The two git operations the engine needs that the route-facing GitService does not offer."""

from __future__ import annotations

import pygit2

from anyon.services.git.errors import GitServiceError


def git_dir(repo_path: str) -> str:
    """The main repository's ``.git`` directory: what a worktree's ``.git`` file points into."""
    try:
        return str(pygit2.Repository(repo_path).path).rstrip("/")
    except pygit2.GitError as exc:
        raise GitServiceError(f"{repo_path} is not a git repository: {exc}") from None


def reset_hard(worktree_path: str, oid: str) -> None:
    """``git reset --hard <oid>`` in the worktree (a retry goes back to before the retried process)."""
    try:
        repo = pygit2.Repository(worktree_path)
        repo.reset(pygit2.Oid(hex=oid), pygit2.enums.ResetMode.HARD)
    except (pygit2.GitError, ValueError, KeyError) as exc:
        raise GitServiceError(f"Cannot reset {worktree_path} to {oid}: {exc}") from None
