"""The managed worktree directory: which paths are inside it, the locks around work in it, and the
pointer files that tie a worktree and the repository's metadata of it together.

Every attempt worktree is a direct child of one base dir; a path is managed when its resolved parent is
that dir (the path itself is not resolved, so a symlink planted there is the link, never its target).
Anything that creates or removes a worktree checks the path here first and holds its locks: one per
worktree path (so ``ensure`` and ``remove`` of the same attempt never interleave) and one per repository
around metadata changes (so a prune never sees another worktree half-created).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pygit2

from .errors import InvalidPath
from .locks import PathLocks


def same_path(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` resolve to the same path (symlinks followed)."""
    return os.path.normpath(os.path.realpath(a)) == os.path.normpath(os.path.realpath(b))


def read_gitdir_file(path: str) -> str | None:
    """The target of a ``gitdir: <path>`` pointer file, or None."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(4096).strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    return text[len("gitdir:") :].strip()


def read_plain(path: str) -> str | None:
    """The stripped contents of a plain pointer file such as ``<meta>/gitdir``, or None."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(4096).strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def metadata_dir(repo: pygit2.Repository, name: str) -> str:
    """``<repo>/.git/worktrees/<name>``: git's (host-owned) metadata of the linked worktree ``name``."""
    return os.path.join(repo.path, "worktrees", name)


class ManagedDir:
    """The base dir every attempt worktree is a direct child of, and the locks around work in it."""

    def __init__(self, base_dir: str) -> None:
        self.base_dir = os.path.normpath(os.path.abspath(os.path.expanduser(base_dir)))
        self._path_locks = PathLocks()
        self._repo_locks = PathLocks()

    def is_managed(self, path: str) -> bool:
        """True when ``path`` is a direct child of the base dir (its parent resolved, itself not)."""
        norm = os.path.normpath(os.path.abspath(path))
        name = os.path.basename(norm)
        if name in ("", ".", "..") or not os.path.isabs(path):
            return False
        return same_path(os.path.dirname(norm), self.base_dir)

    def managed(self, path: str) -> str:
        """``path`` normalised, or InvalidPath when it is not a direct child of the base dir."""
        if not isinstance(path, str) or not path or not self.is_managed(path):
            raise InvalidPath(f"'{path}' is not inside the managed worktree directory '{self.base_dir}'")
        return os.path.normpath(os.path.abspath(path))

    @contextmanager
    def lock(self, worktree_path: str) -> Iterator[None]:
        """Hold the per-path lock (callers chaining several worktree calls may take it themselves)."""
        with self._path_locks.hold(worktree_path):
            yield

    @contextmanager
    def repo_lock(self, repo: pygit2.Repository) -> Iterator[None]:
        """Hold the per-repository lock (metadata changes: add, remove, prune)."""
        with self._repo_locks.hold(repo.path):
            yield
