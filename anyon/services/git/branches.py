"""Repositories and their branches: is there one, make one (with a first commit), list, look up, create,
delete and rename branches.

Branch names we create go through :func:`~anyon.services.git.repo.validate_branch_name`; names we only
look up (which may predate our naming rules) through ``check_lookup_name``. Creating and renaming hold
the repository's lock so two requests never race for one name.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import BranchType, RepositoryInitFlag

from .errors import BranchExists, BranchNotFound, GitServiceError, NotARepository, RebaseInProgress
from .locks import PathLocks
from .repo import check_lookup_name, open_repo, resolve_branch, rfc3339, signature, validate_branch_name
from .status import conflict_op


def is_repository(path: str) -> bool:
    try:
        open_repo(path)
    except NotARepository:
        return False
    return True


def init_repo(path: str) -> None:
    """``git init`` with ``main`` as the initial branch when ``path`` has no ``.git`` (idempotent)."""
    p = Path(path)
    if (p / ".git").exists():
        open_repo(p)  # raise NotARepository if the .git there is broken
        return
    try:
        p.mkdir(parents=True, exist_ok=True)
        pygit2.init_repository(
            str(p), initial_head="main", flags=RepositoryInitFlag.MKPATH | RepositoryInitFlag.NO_REINIT
        )
    except (OSError, pygit2.GitError) as exc:
        raise NotARepository(f"Cannot create a git repository at '{p}': {exc}") from exc


def ensure_initial_commit(repo_path: str) -> str:
    """Give an empty repository a first (empty) commit on ``main`` so attempts can branch from it."""
    repo = open_repo(repo_path)
    if not repo.head_is_unborn:
        return str(repo.head.target)
    # spec §1.3: a repository without commits gets a ``main`` branch, whatever its unborn HEAD names
    ref = "refs/heads/main"
    tree = repo.TreeBuilder().write()
    sig = signature(repo)
    oid = repo.create_commit(ref, sig, sig, "Initial commit", tree, [])
    repo.set_head(ref)
    return str(oid)


def branches(repo_path: str) -> list[dict[str, Any]]:
    """GitBranch[]: local then remote branches; the current one first, then newest commit first."""
    repo = open_repo(repo_path)
    current = None if repo.head_is_unborn or repo.head_is_detached else repo.head.shorthand
    out: list[dict[str, Any]] = []
    for kind, is_remote in ((BranchType.LOCAL, False), (BranchType.REMOTE, True)):
        for name in repo.listall_branches(kind):
            if is_remote and name.endswith("/HEAD"):
                continue
            branch = repo.lookup_branch(name, kind)
            try:
                commit = branch.peel(pygit2.Commit)
            except (pygit2.GitError, KeyError, ValueError):
                continue
            out.append(
                {
                    "name": name,
                    "is_current": not is_remote and name == current,
                    "is_remote": is_remote,
                    "last_commit_date": rfc3339(commit.commit_time),
                    "_t": commit.commit_time,
                }
            )
    out.sort(key=lambda b: (not b["is_current"], b["is_remote"], -b["_t"], b["name"]))
    for b in out:
        del b["_t"]
    return out


def branch_exists(repo_path: str, name: str) -> bool:
    try:
        resolve_branch(open_repo(repo_path), name)
    except (BranchNotFound, GitServiceError):
        return False
    return True


def branch_commit_time(repo_path: str, name: str) -> dt.datetime | None:
    """When the tip of the local branch ``name`` was committed (UTC); None when there is none."""
    try:
        tip = resolve_branch(open_repo(repo_path), name, local_only=True)
    except BranchNotFound:
        return None
    return dt.datetime.fromtimestamp(tip.commit_time, dt.UTC)


def current_branch(repo_path: str) -> str | None:
    repo = open_repo(repo_path)
    if repo.head_is_unborn or repo.head_is_detached:
        return None
    return str(repo.head.shorthand)


def create_branch(locks: PathLocks, repo_path: str, name: str, base_branch: str) -> str:
    """Create ``name`` at the tip of ``base_branch``; returns the commit sha."""
    validate_branch_name(name)
    repo = open_repo(repo_path)
    base = resolve_branch(repo, base_branch)
    with locks.hold(repo_path):
        if repo.lookup_branch(name) is not None:
            raise BranchExists(name)
        repo.branches.local.create(name, base)
    return str(base.id)


def delete_branch(repo_path: str, name: str) -> None:
    repo = open_repo(repo_path)
    branch = repo.lookup_branch(check_lookup_name(name))
    if branch is None:
        raise BranchNotFound(name)
    try:
        branch.delete()
    except pygit2.GitError as exc:
        raise GitServiceError(f"Cannot delete branch '{name}': {exc}") from exc


def rename_branch(
    locks: PathLocks, repo_path: str, old: str, new: str, worktree_path: str | None = None
) -> str:
    """Rename a local branch; worktrees that have it checked out follow the new name."""
    validate_branch_name(new)
    repo = open_repo(repo_path)
    branch = repo.lookup_branch(check_lookup_name(old))
    if branch is None:
        raise BranchNotFound(old)
    if worktree_path and Path(worktree_path).is_dir():
        try:
            if conflict_op(open_repo(worktree_path)) == "rebase":
                raise RebaseInProgress("Cannot rename the branch while a rebase is in progress")
        except NotARepository:
            pass
    if old == new:
        return new
    with locks.hold(repo_path):
        if repo.lookup_branch(new) is not None:
            raise BranchExists(new)
        try:
            branch.rename(new)
        except pygit2.GitError as exc:
            raise GitServiceError(f"Cannot rename branch '{old}' to '{new}': {exc}") from exc
    return new
