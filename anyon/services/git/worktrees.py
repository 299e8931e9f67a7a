"""Git worktrees per attempt: naming, creation, recreation on demand, removal, copy-files and cleanup.

Every attempt gets a branch ``<prefix>/<short>-<slug>`` and a linked worktree ``<base>/<short>-<slug>``
(spec §6). Branches, metadata checks and pruning use libgit2; the checkout itself runs ``git worktree
add`` (see ``worktree_creation`` for why).

:class:`WorktreeManager` is the one door the rest of the server uses; it hands each call to the module
that owns it:

- ``worktree_names`` — the branch and folder names of an attempt;
- ``managed_dir`` — which paths are inside the managed base dir, and the per-path and per-repository locks;
- ``worktree_creation`` — reserve, create, check health, recreate (and migrate to isolation);
- ``worktree_removal`` — everything that deletes: one worktree, orphans, expired worktrees;
- ``worktree_files`` — copying the project's ``copy_files`` in without following links.

Deletion is the dangerous part, so it is fenced in three ways: a path is only ever removed when it is a
direct child of the managed base dir (checked on the resolved parent), a symlink is unlinked and never
followed, and git metadata under ``<repo>/.git/worktrees/<name>`` is only removed when its ``gitdir`` file
points back at the worktree being removed. Every deletion is logged.

Concurrency: one lock per worktree path (so ``ensure`` and ``remove`` of the same attempt never interleave)
and one per repository around metadata changes (so a prune never sees another worktree half-created). The
API calls these methods through ``asyncio.to_thread``; thread locks are what that needs.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable
from datetime import datetime

import pygit2

from . import worktree_names
from .isolation import view_dir
from .managed_dir import ManagedDir
from .repo import open_repo
from .worktree_creation import WorktreeCreation
from .worktree_files import copy_files
from .worktree_removal import WorktreeRemoval


class WorktreeManager:
    """Attempt worktrees; with ``isolated`` (cloud mode) each one also gets a repository of its own.

    Isolated: ``git worktree add`` still makes the checkout and the host's metadata in
    ``<repo>/.git/worktrees/<name>`` (the *view* the server reads the attempt through), then the
    worktree's ``.git`` pointer file is replaced by a repository of the attempt's own (see
    :func:`~anyon.services.git.isolation.isolate_checkout`). The agent's container mounts that worktree
    and the project's object store read-only; nothing it can write is read by git on the host as
    configuration.
    """

    def __init__(self, base_dir: str, *, isolated: bool = False) -> None:
        self._area = ManagedDir(base_dir)
        self._removal = WorktreeRemoval(self._area)
        self._creation = WorktreeCreation(self._area, self._removal, isolated=isolated)

    @property
    def base_dir(self) -> str:
        """The managed base dir (normalised, absolute); every worktree is a direct child of it."""
        return self._area.base_dir

    @property
    def isolated(self) -> bool:
        return self._creation.isolated

    # ------------------------------------------------------------------------------------------ naming

    @staticmethod
    def folder_name(attempt_id: str | uuid.UUID, task_title: str) -> str:
        return worktree_names.folder_name(attempt_id, task_title)

    @classmethod
    def branch_name(cls, prefix: str | None, attempt_id: str | uuid.UUID, task_title: str) -> str:
        """``<prefix>/<short>-<slug>``, or ``<short>-<slug>`` with an empty prefix; validated."""
        return worktree_names.branch_name(prefix, attempt_id, task_title)

    def worktree_path(self, attempt_id: str | uuid.UUID, task_title: str) -> str:
        return os.path.join(self.base_dir, self.folder_name(attempt_id, task_title))

    def view(self, repo_path: str, worktree_path: str) -> str:
        """Where the server opens an attempt's checkout with libgit2.

        Local: the worktree itself. Isolated: the host-owned metadata directory of the linked worktree
        (its HEAD, index and ``gitdir`` are the server's; refs and objects are the project's), never the
        worktree's ``.git``, which belongs to the agent. Decided by the mode, never by what is on disk.
        """
        if not self.isolated:
            return worktree_path
        name = os.path.basename(os.path.normpath(worktree_path))
        return view_dir(open_repo(repo_path), name)

    # ------------------------------------------------------------------------------------------ guards

    def is_managed(self, path: str) -> bool:
        """True when ``path`` is a direct child of the base dir (its parent resolved, itself not)."""
        return self._area.is_managed(path)

    def lock(self, worktree_path: str) -> contextlib.AbstractContextManager[None]:
        """Hold the per-path lock (callers chaining several worktree calls may take it themselves)."""
        return self._area.lock(worktree_path)

    def hold_repo(self, repo: pygit2.Repository) -> contextlib.AbstractContextManager[None]:
        """The per-repository lock :meth:`create` holds, for other modules that make branches."""
        return self._area.repo_lock(repo)

    # ------------------------------------------------------------------------------------ create / ensure

    @property
    def fills_existing_dir(self) -> bool:
        """Whether :meth:`create` checks out *into* a directory made by :meth:`reserve` (same inode)."""
        return self._creation.fills_existing_dir

    def reserve(self, worktree_path: str) -> str:
        """Create the empty worktree folder ahead of :meth:`create`; refuses an existing path."""
        return self._creation.reserve(worktree_path)

    def create(self, repo_path: str, branch: str, worktree_path: str, base_branch: str) -> str:
        """Create ``branch`` from ``base_branch`` and check it out at ``worktree_path`` (all-or-nothing)."""
        return self._creation.create(repo_path, branch, worktree_path, base_branch)

    def is_healthy(self, repo_path: str, worktree_path: str) -> bool:
        """The folder exists, is a worktree, and the repository's metadata of that name points at it."""
        return self._creation.is_healthy(repo_path, worktree_path)

    def ensure(self, repo_path: str, branch: str, worktree_path: str) -> bool:
        """Recreate the worktree for the existing ``branch`` when the folder or git's metadata is gone."""
        return self._creation.ensure(repo_path, branch, worktree_path)

    # -------------------------------------------------------------------------------------------- remove

    def infer_repo_path(self, worktree_path: str) -> str | None:
        """The main repository of a worktree, from its ``.git`` pointer file (verified both ways)."""
        return self._removal.infer_repo_path(worktree_path)

    def remove(self, repo_path: str | None, worktree_path: str) -> bool:
        """Force-remove a worktree: its folder, its git metadata, then prune; True if anything went."""
        return self._removal.remove(repo_path, worktree_path)

    # ---------------------------------------------------------------------------------------- copy files

    def copy_files(self, repo_path: str, worktree_path: str, copy_files_spec: str | None) -> list[str]:
        """Copy the project's ``copy_files`` (comma-separated paths or globs) from the repo to the worktree.

        Bad entries are skipped with a warning; returns the repository-relative paths that were copied.
        """
        return copy_files(repo_path, self._area.managed(worktree_path), copy_files_spec)

    # ------------------------------------------------------------------------------------------- cleanup

    def sweep_orphans(self, known_paths: Iterable[str | None], dry_run: bool = False) -> list[str]:
        """Remove every entry of the base dir that no attempt's ``container_ref`` names."""
        return self._removal.sweep_orphans(known_paths, dry_run)

    def vanished(self, worktree_paths: Iterable[str | None]) -> list[str]:
        """The paths among ``worktree_paths`` whose folder no longer exists (to mark worktree_deleted)."""
        return self._removal.vanished(worktree_paths)

    @staticmethod
    def is_expired(
        last_activity: datetime,
        hours: float = 72.0,
        has_running_process: bool = False,
        now: datetime | None = None,
    ) -> bool:
        """Spec §6 expiry: no running process and more than ``hours`` since the last activity."""
        return WorktreeRemoval.is_expired(last_activity, hours, has_running_process, now)

    def expire(self, worktrees: Iterable[tuple[str | None, str]]) -> list[str]:
        """Remove each ``(repo_path, worktree_path)``; returns the paths now gone (mark them deleted)."""
        return self._removal.expire(worktrees)
