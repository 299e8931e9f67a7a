"""Checkouts made before the attempt that will use them, and how an attempt takes one.

A checkout made ahead is a linked worktree ``<worktree_dir>/<short>-warm`` (the attempt id, hence the
short id, is chosen when it is made) with a *detached* ``HEAD`` at the commit its base branch pointed at.
No branch exists until an attempt takes it, so nothing shows in the branch list, and it belongs to that
one attempt from then on, like any worktree.

Taking one (:meth:`AheadCheckouts.adopt`), under the folder's and the repository's locks, as
:meth:`~anyon.services.git.worktrees.WorktreeManager.create` holds them: the base branch must still point at
that commit and the checkout's ``HEAD`` must still be detached there (read from the host-owned metadata
directory, never from the folder's ``.git``); then the attempt's branch is created at the commit and
the checkout's ``HEAD`` set to it, and in cloud mode the worktree gets its own repository
(:func:`~anyon.services.git.isolation.isolate_checkout`), exactly as after ``git worktree add``. When it
cannot be taken, it is removed (:meth:`remove`), or emptied in place (:meth:`clear`) where a container
already mounts the folder, and the caller makes a fresh checkout.

Used by :mod:`anyon.services.git.ready_worktrees` (local mode) and by the cloud warm pool, which fills the
folder its container mounts (:mod:`anyon.services.runners.warm`).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass

import pygit2

from anyon.services.git.isolation import isolate_checkout, view_dir
from anyon.services.git.repo import open_repo, run_git
from anyon.services.git.worktrees import WorktreeManager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadyWorktree:
    """A detached checkout of ``base_branch`` at ``base_oid``, waiting for the attempt ``attempt_id``."""

    project_id: str
    attempt_id: uuid.UUID
    repo_path: str
    base_branch: str
    base_oid: str
    folder: str


def base_commit(repo: pygit2.Repository, base_branch: str) -> str | None:
    branch = repo.lookup_branch(base_branch) or repo.lookup_branch(
        base_branch, pygit2.enums.BranchType.REMOTE
    )
    return str(branch.peel(pygit2.Commit).id) if branch is not None else None


class AheadCheckouts:
    """Makes, takes and removes checkouts made ahead, through the server's :class:`WorktreeManager`."""

    def __init__(self, worktrees: WorktreeManager) -> None:
        self.worktrees = worktrees

    @property
    def available(self) -> bool:
        """``git worktree add --detach`` makes the checkout; without ``git`` nothing is made ahead."""
        return shutil.which("git") is not None

    def current_branch(self, repo_path: str) -> str | None:
        """The branch the project's checkout is on (None when its ``HEAD`` is detached or unborn)."""
        repo = open_repo(repo_path)
        if repo.head_is_unborn or repo.head_is_detached:
            return None
        return repo.head.shorthand

    def make(
        self, project_id: str, attempt_id: uuid.UUID, repo_path: str, folder: str
    ) -> ReadyWorktree | None:
        """Check the project's current branch out, detached, at ``folder`` (absent or an empty directory).

        None when the project has no current branch (detached or unborn ``HEAD``). On failure nothing of
        the checkout is left; an empty ``folder`` that existed before stays (a container may mount it).
        """
        repo = open_repo(repo_path)
        if repo.head_is_unborn or repo.head_is_detached:
            return None
        base_branch = repo.head.shorthand
        base_oid = base_commit(repo, base_branch)
        if base_oid is None:
            return None
        existed = os.path.isdir(folder)
        with self.worktrees.lock(folder):
            os.makedirs(self.worktrees.base_dir, exist_ok=True)
            try:
                # the CLI on the project repository only (THREAT-MODEL rule 2), without hooks
                run_git(
                    [
                        "-c",
                        "core.hooksPath=/dev/null",
                        "worktree",
                        "add",
                        "--quiet",
                        "--detach",
                        folder,
                        base_oid,
                    ],
                    cwd=repo.path,
                    timeout=1800.0,
                )
            except BaseException:
                self._undo(repo, folder, keep_folder=existed)
                raise
        return ReadyWorktree(project_id, attempt_id, repo_path, base_branch, base_oid, folder)

    def stale(self, ready: ReadyWorktree) -> bool:
        """Whether the base branch moved (or vanished) since the checkout was made."""
        try:
            return base_commit(open_repo(ready.repo_path), ready.base_branch) != ready.base_oid
        except Exception:
            return True

    def adopt(
        self, ready: ReadyWorktree, branch: str, base_branch: str, *, keep_folder: bool = False
    ) -> bool:
        """Make ``branch`` the checkout's branch; False (and the checkout removed or emptied) if it cannot.

        ``keep_folder``: a container mounts the folder, so a checkout that cannot be taken is emptied in
        place rather than removed. Runs in a worker thread.
        """
        try:
            with self.worktrees.lock(ready.folder):
                repo = open_repo(ready.repo_path)
                with self.worktrees.hold_repo(repo):
                    if self._take(repo, ready, branch, base_branch):
                        log.info(
                            "attempt %s took the checkout made ahead at %s", ready.attempt_id, ready.folder
                        )
                        return True
        except (pygit2.GitError, OSError, ValueError, KeyError) as exc:
            log.warning("checkout made ahead at %s could not be used: %s", ready.folder, exc)
        if keep_folder:
            self.clear(ready)
        else:
            self.remove(ready)
        return False

    def _take(self, repo: pygit2.Repository, ready: ReadyWorktree, branch: str, base_branch: str) -> bool:
        if base_branch != ready.base_branch or base_commit(repo, base_branch) != ready.base_oid:
            log.info("checkout made ahead at %s is stale: %s moved", ready.folder, base_branch)
            return False
        if repo.lookup_branch(branch) is not None:
            return False
        name = os.path.basename(ready.folder)
        view = view_dir(repo, name)  # host-owned: HEAD and index of the linked worktree
        if not os.path.isdir(ready.folder) or not os.path.isdir(view):
            return False
        checkout = pygit2.Repository(view)
        if not checkout.head_is_detached or str(checkout.head.target) != ready.base_oid:
            return False
        commit = repo.get(ready.base_oid)
        if commit is None:
            return False
        created = repo.branches.local.create(branch, commit.peel(pygit2.Commit))
        try:
            checkout.set_head(created.name)
            if pygit2.Repository(view).head.name != created.name:
                raise OSError(f"HEAD of {ready.folder} did not move to {created.name}")
            if self.worktrees.isolated:
                isolate_checkout(repo, name, ready.folder, created.branch_name)
        except BaseException:
            checkout.set_head(pygit2.Oid(hex=ready.base_oid))
            created.delete()
            raise
        return True

    def remove(self, ready: ReadyWorktree) -> None:
        """The checkout, its folder and its metadata (never raises: logged)."""
        try:
            self.worktrees.remove(ready.repo_path, ready.folder)
        except Exception as exc:
            log.warning("could not remove the checkout made ahead at %s: %s", ready.folder, exc)

    def clear(self, ready: ReadyWorktree) -> None:
        """The checkout and its metadata, leaving the folder itself (same inode) empty."""
        try:
            self._undo(open_repo(ready.repo_path), ready.folder, keep_folder=True)
        except Exception as exc:
            log.warning("could not empty the checkout made ahead at %s: %s", ready.folder, exc)

    def _undo(self, repo: pygit2.Repository, folder: str, *, keep_folder: bool) -> None:
        if not keep_folder:
            self.worktrees.remove(str(repo.workdir or repo.path), folder)
            return
        if not self.worktrees.is_managed(folder) or os.path.islink(folder) or not os.path.isdir(folder):
            return
        with os.scandir(folder) as entries:
            for entry in list(entries):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
        view = view_dir(repo, os.path.basename(folder))
        if os.path.isdir(view):
            shutil.rmtree(view, ignore_errors=True)
