"""Everything that deletes: one worktree (folder, metadata, prune), orphans in the base dir, expired ones.

Deletion is the dangerous part, so it is fenced in three ways: a path is only ever removed when it is a
direct child of the managed base dir (checked on the resolved parent), a symlink is unlinked and never
followed, and git metadata under ``<repo>/.git/worktrees/<name>`` is only removed when its ``gitdir`` file
points back at the worktree being removed. Every deletion is logged.

Creation uses :meth:`WorktreeRemoval.teardown` to undo a failed checkout; apart from that it only ever
removes the empty folder it reserved itself.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pygit2

from .errors import InvalidPath, NotARepository, WorktreeError
from .managed_dir import ManagedDir, metadata_dir, read_gitdir_file, read_plain, same_path
from .repo import open_repo

log = logging.getLogger(__name__)


def _safe_rmtree(path: str) -> None:
    """Remove ``path`` without following any symlink out of it (a symlink itself is only unlinked)."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


class WorktreeRemoval:
    """Removes worktrees of the managed dir: their folders, git's metadata of them, and prunes."""

    def __init__(self, area: ManagedDir) -> None:
        self._area = area

    def infer_repo_path(self, worktree_path: str) -> str | None:
        """The main repository of a worktree, from its ``.git`` pointer file (verified both ways)."""
        gitdir = read_gitdir_file(os.path.join(worktree_path, ".git"))
        if not gitdir:
            return None
        back = read_gitdir_file(os.path.join(gitdir, "gitdir")) or read_plain(os.path.join(gitdir, "gitdir"))
        if back is None or not same_path(back, os.path.join(worktree_path, ".git")):
            return None
        common = os.path.dirname(os.path.dirname(os.path.normpath(gitdir)))  # <repo>/.git
        try:
            repo = pygit2.Repository(common)
        except pygit2.GitError:
            return None
        return str(repo.workdir or repo.path)

    def remove(self, repo_path: str | None, worktree_path: str) -> bool:
        """Force-remove a worktree: its folder, its git metadata, then prune. Returns True if anything went.

        ``repo_path`` may be None or stale; the repository is then inferred from the worktree's ``.git``
        file, and if that fails only the folder is removed.
        """
        path = self._area.managed(worktree_path)
        name = os.path.basename(path)
        with self._area.lock(path):
            repo: pygit2.Repository | None = None
            for candidate in (repo_path, self.infer_repo_path(path)):
                if candidate:
                    try:
                        repo = open_repo(candidate)
                        break
                    except NotARepository:
                        continue
            if repo is None:
                return self.delete_folder(path, "worktree without a known repository")
            with self._area.repo_lock(repo):
                return self.teardown(repo, name, path)

    def delete_folder(self, path: str, why: str) -> bool:
        """Delete the managed ``path`` (a symlink is only unlinked); False when nothing was there."""
        if not os.path.lexists(path):
            return False
        if not self._area.is_managed(path):  # belt and braces: never outside the base dir
            raise InvalidPath(f"Refusing to delete '{path}' outside '{self._area.base_dir}'")
        log.info("deleting %s (%s)", path, why)
        _safe_rmtree(path)
        return True

    def drop_stale_metadata(self, repo: pygit2.Repository, name: str) -> None:
        """Drop leftover metadata called ``name`` before a new worktree takes it; a live one raises."""
        meta = metadata_dir(repo, name)
        if not os.path.isdir(meta):
            return
        try:
            wt = repo.lookup_worktree(name)
            prunable = wt is None or wt.is_prunable
        except (pygit2.GitError, KeyError):
            prunable = True
        if not prunable:
            raise WorktreeError(f"The repository already has a live worktree named '{name}'")
        log.info("pruning stale worktree metadata %s", meta)
        shutil.rmtree(meta, ignore_errors=True)

    def teardown(self, repo: pygit2.Repository, name: str, path: str) -> bool:
        """Folder, then our metadata (only if it points back at ``path``), then prune what is prunable."""
        removed = self.delete_folder(path, "worktree removal")
        meta = metadata_dir(repo, name)
        back = read_plain(os.path.join(meta, "gitdir"))
        if os.path.isdir(meta) and (back is None or same_path(os.path.dirname(back), path)):
            log.info("deleting worktree metadata %s", meta)
            shutil.rmtree(meta, ignore_errors=True)
            removed = True
        self.prune(repo)
        return removed

    @staticmethod
    def prune(repo: pygit2.Repository) -> None:
        """``git worktree prune``: forget worktrees whose folders are gone (metadata only)."""
        for other in repo.list_worktrees():
            try:
                wt = repo.lookup_worktree(other)
                if wt is not None and wt.is_prunable:
                    log.info("pruning worktree metadata of %s", other)
                    wt.prune(True)
            except (pygit2.GitError, KeyError, OSError):
                continue

    def sweep_orphans(self, known_paths: Iterable[str | None], dry_run: bool = False) -> list[str]:
        """Remove every entry of the base dir that no attempt's ``container_ref`` names.

        Directories are removed (with their git metadata when it points back at them), symlinks are
        unlinked without being followed, plain files are left alone. With ``dry_run`` nothing is removed;
        what would be is logged and returned.
        """
        if not os.path.isdir(self._area.base_dir):
            return []
        known = {os.path.normpath(os.path.abspath(p)) for p in known_paths if p}
        orphans: list[str] = []
        for entry in sorted(os.scandir(self._area.base_dir), key=lambda e: e.name):
            full = os.path.join(self._area.base_dir, entry.name)
            if full in known:
                continue
            if not (entry.is_symlink() or entry.is_dir(follow_symlinks=False)):
                continue
            orphans.append(full)
            if dry_run:
                log.info("orphan worktree %s would be removed (dry run)", full)
                continue
            try:
                self._remove_orphan(full)
            except (OSError, pygit2.GitError, InvalidPath) as exc:
                log.error("could not remove orphan worktree %s: %s", full, exc)
        return orphans

    def _remove_orphan(self, path: str) -> None:
        with self._area.lock(path):
            if os.path.islink(path):
                self.delete_folder(path, "orphan symlink in the worktree directory")
                return
            repo_path = self.infer_repo_path(path)
            self.delete_folder(path, "orphan worktree")
            if repo_path:
                try:
                    repo = open_repo(repo_path)
                except NotARepository:
                    return
                with self._area.repo_lock(repo):
                    self.prune(repo)

    def vanished(self, worktree_paths: Iterable[str | None]) -> list[str]:
        """The paths among ``worktree_paths`` whose folder no longer exists (to mark worktree_deleted)."""
        return [p for p in worktree_paths if p and not os.path.isdir(p)]

    @staticmethod
    def is_expired(
        last_activity: datetime,
        hours: float = 72.0,
        has_running_process: bool = False,
        now: datetime | None = None,
    ) -> bool:
        """Spec §6 expiry: no running process and more than ``hours`` since the last activity."""
        if has_running_process:
            return False
        now = now or datetime.now(UTC)
        if last_activity.tzinfo is None:
            last_activity = last_activity.replace(tzinfo=UTC)
        return now - last_activity > timedelta(hours=hours)

    def expire(self, worktrees: Iterable[tuple[str | None, str]]) -> list[str]:
        """Remove each ``(repo_path, worktree_path)``; returns the paths now gone (mark them deleted).

        Paths outside the base dir are refused and logged, never removed.
        """
        gone: list[str] = []
        for repo_path, path in worktrees:
            try:
                self.remove(repo_path, path)
                gone.append(path)
            except InvalidPath as exc:
                log.error("not expiring %s: %s", path, exc)
            except (OSError, pygit2.GitError, WorktreeError) as exc:
                log.error("could not expire worktree %s: %s", path, exc)
        return gone
