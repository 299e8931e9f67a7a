"""Making an attempt's worktree: reserve its folder, create branch and checkout, check its health and
recreate it on demand (giving a worktree made before isolation a repository of its own on the way).

The checkout itself runs ``git worktree add`` (argv list, no shell, hooks disabled) because
bench/git_ops.py measured libgit2's ``add_worktree`` at 2.0x (2,000 files) to 2.2-2.8x (20,000 files) the
time of ``git worktree add`` (libgit2's checkout does several times the user-space work per file);
libgit2 remains the fallback when no ``git`` executable is installed.

Creation is all-or-nothing: what a failed :meth:`WorktreeCreation.create` made (branch, folder, metadata)
is removed again through :class:`~anyon.services.git.worktree_removal.WorktreeRemoval`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil

import pygit2

from .errors import BranchExists, BranchNotFound, GitCommandFailed, NotARepository, WorktreeError
from .isolation import isolate_checkout
from .managed_dir import ManagedDir, metadata_dir, read_gitdir_file, same_path
from .repo import check_lookup_name, open_repo, run_git, validate_branch_name
from .worktree_removal import WorktreeRemoval

log = logging.getLogger(__name__)


def _add_worktree(repo: pygit2.Repository, name: str, path: str, branch: pygit2.Branch) -> None:
    """Check ``branch`` out at ``path`` as the linked worktree ``name`` (= the folder name)."""
    if shutil.which("git") is None:
        repo.add_worktree(name, path, branch)
        return
    # The branch and path were validated by the caller; the path is absolute, so never read as an option.
    run_git(
        ["-c", "core.hooksPath=/dev/null", "worktree", "add", "--quiet", path, branch.branch_name],
        cwd=repo.path,
        timeout=1800.0,
    )


class WorktreeCreation:
    """Creates and repairs the worktrees of the managed dir (``isolated``: each with its own repository)."""

    def __init__(self, area: ManagedDir, removal: WorktreeRemoval, *, isolated: bool) -> None:
        self._area = area
        self._removal = removal
        self.isolated = isolated

    @property
    def fills_existing_dir(self) -> bool:
        """Whether :meth:`create` checks out *into* a directory made by :meth:`reserve` (same inode).

        ``git worktree add`` fills an existing empty directory; libgit2 (the fallback without a ``git``
        executable) insists on creating it, so the reserved directory is replaced by a new one. A bind
        mount of the reserved directory, made before the checkout, only sees the files in the first case.
        """
        return shutil.which("git") is not None

    def reserve(self, worktree_path: str) -> str:
        """Create the empty worktree folder ahead of :meth:`create`.

        Cloud mode mounts the folder into the attempt's container while ``git worktree add`` fills it,
        instead of provisioning the container only after the checkout. Refuses an existing path.
        """
        path = self._area.managed(worktree_path)
        with self._area.lock(path):
            try:
                os.makedirs(self._area.base_dir, exist_ok=True)
                os.mkdir(path, 0o755)
            except FileExistsError:
                raise WorktreeError(f"Worktree folder '{path}' already exists") from None
            except OSError as exc:
                raise WorktreeError(f"Cannot create the worktree folder '{path}': {exc}") from exc
        return path

    @staticmethod
    def _is_empty_dir(path: str) -> bool:
        if os.path.islink(path) or not os.path.isdir(path):
            return False
        with os.scandir(path) as entries:
            return next(entries, None) is None

    def create(self, repo_path: str, branch: str, worktree_path: str, base_branch: str) -> str:
        """Create ``branch`` from ``base_branch`` and check it out at ``worktree_path``.

        The folder must not exist, or be an empty directory (see :meth:`reserve`). All-or-nothing: on
        failure the branch, the folder (a reserved one too) and the metadata created here are removed.
        """
        path = self._area.managed(worktree_path)
        reserved = os.path.lexists(path) and self._is_empty_dir(path)
        try:
            return self._create(repo_path, branch, path, base_branch, reserved)
        except BaseException:
            if reserved and self._is_empty_dir(path):
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            raise

    def _create(self, repo_path: str, branch: str, path: str, base_branch: str, reserved: bool) -> str:
        validate_branch_name(branch)
        check_lookup_name(base_branch)
        repo = open_repo(repo_path)
        name = os.path.basename(path)
        with self._area.lock(path), self._area.repo_lock(repo):
            base = repo.lookup_branch(base_branch) or repo.lookup_branch(
                base_branch, pygit2.enums.BranchType.REMOTE
            )
            if base is None:
                raise BranchNotFound(base_branch)
            if repo.lookup_branch(branch) is not None:
                raise BranchExists(branch)
            if os.path.lexists(path) and not (reserved and self._is_empty_dir(path)):
                raise WorktreeError(f"Worktree folder '{path}' already exists")
            if reserved and not self.fills_existing_dir:
                os.rmdir(path)  # libgit2 creates the folder itself
            self._removal.drop_stale_metadata(repo, name)
            try:
                os.makedirs(self._area.base_dir, exist_ok=True)
            except OSError as exc:
                raise WorktreeError(
                    f"Cannot create the worktree directory '{self._area.base_dir}': {exc}"
                ) from exc
            created = repo.branches.local.create(branch, base.peel(pygit2.Commit))
            try:
                self._add(repo, name, path, created)
            except (pygit2.GitError, OSError, ValueError, GitCommandFailed) as exc:
                self._removal.teardown(repo, name, path)
                created.delete()
                raise WorktreeError(f"Cannot create worktree '{path}' for '{branch}': {exc}") from exc
        log.info("created worktree %s on branch %s from %s", path, branch, base_branch)
        return path

    def _add(self, repo: pygit2.Repository, name: str, path: str, branch: pygit2.Branch) -> None:
        _add_worktree(repo, name, path, branch)
        if self.isolated:
            isolate_checkout(repo, name, path, branch.branch_name)

    def is_healthy(self, repo_path: str, worktree_path: str) -> bool:
        """The folder exists, is a worktree, and the repository's metadata of that name points at it."""
        try:
            repo = open_repo(repo_path)
        except NotARepository:
            return False
        return self._healthy(repo, os.path.basename(os.path.normpath(worktree_path)), worktree_path)

    def _healthy(self, repo: pygit2.Repository, name: str, path: str) -> bool:
        dotgit = os.path.join(path, ".git")
        if os.path.islink(path) or os.path.islink(dotgit):
            return False
        if not (os.path.isdir(dotgit) if self.isolated else os.path.isfile(dotgit)):
            return False
        try:
            wt = repo.lookup_worktree(name)
        except (pygit2.GitError, KeyError):
            return False
        if wt is None or wt.is_prunable or not same_path(wt.path, path):
            return False
        try:  # isolated: the host's view, never the agent's .git
            open_repo(metadata_dir(repo, name) if self.isolated else path)
        except NotARepository:
            return False
        return True

    def ensure(self, repo_path: str, branch: str, worktree_path: str) -> bool:
        """Recreate the worktree for the existing ``branch`` when the folder or git's metadata is gone.

        Returns True when it had to recreate. Steps (spec §6): drop what is left (metadata, folder), prune,
        re-add; one retry after another metadata cleanup.
        """
        path = self._area.managed(worktree_path)
        check_lookup_name(branch)
        repo = open_repo(repo_path)
        name = os.path.basename(path)
        with self._area.lock(path), self._area.repo_lock(repo):
            if self.isolated and self._migrate(repo, name, path, branch):
                return False
            if self._healthy(repo, name, path):
                return False
            ref = repo.lookup_branch(branch)
            if ref is None:
                raise BranchNotFound(branch)
            log.warning("worktree %s is missing or broken; recreating it for %s", path, branch)
            last: Exception | None = None
            for _ in range(2):
                self._removal.teardown(repo, name, path)
                try:
                    self._add(repo, name, path, ref)
                    return True
                except (pygit2.GitError, OSError, ValueError, GitCommandFailed) as exc:
                    last = exc
            self._removal.teardown(repo, name, path)
            raise WorktreeError(f"Cannot recreate worktree '{path}' for '{branch}': {last}")

    def _migrate(self, repo: pygit2.Repository, name: str, path: str, branch: str) -> bool:
        """A worktree made before isolation (``.git`` a pointer file): give it its own repository in place.

        Uncommitted work stays; only a pointer that leads back to this repository's metadata of the same
        name is converted. Returns True when it converted one.
        """
        dotgit = os.path.join(path, ".git")
        if os.path.islink(dotgit) or not os.path.isfile(dotgit):
            return False
        gitdir = read_gitdir_file(dotgit)
        if gitdir is None or not same_path(gitdir, metadata_dir(repo, name)):
            return False
        log.info("giving worktree %s a repository of its own (made before attempt isolation)", path)
        isolate_checkout(repo, name, path, branch)
        return True
