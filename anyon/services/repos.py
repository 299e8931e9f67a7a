"""Creating repositories for new projects: ``git init`` with a ``main`` branch (spec §1.3)."""

from __future__ import annotations

import pygit2

from anyon.services.errors import ServiceError

_FALLBACK_SIGNATURE = ("Anyon", "anyon@localhost")


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    """The repository's configured identity, or a neutral one when none is configured."""
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature(*_FALLBACK_SIGNATURE)


def init_repository(path: str) -> None:
    """``git init`` at ``path`` with ``main`` as the initial branch, and an initial empty commit.

    The empty commit gives the branch a tip, so attempts can branch off it straight away.
    """
    try:
        repo = pygit2.init_repository(path, initial_head="main")
    except pygit2.GitError as exc:
        raise ServiceError(f"Failed to initialise a git repository at {path}: {exc}") from None
    _initial_commit(repo)


def ensure_main_branch(path: str) -> None:
    """An existing repository without commits gets ``main`` with an initial empty commit."""
    try:
        repo = pygit2.Repository(path)
    except pygit2.GitError as exc:
        raise ServiceError(f"The specified directory is not a git repository: {exc}") from None
    if repo.head_is_unborn:
        repo.set_head("refs/heads/main")
        _initial_commit(repo)


def _initial_commit(repo: pygit2.Repository) -> None:
    if not repo.head_is_unborn:
        return
    tree = repo.TreeBuilder().write()
    sig = signature(repo)
    repo.create_commit("HEAD", sig, sig, "Initial commit", tree, [])
