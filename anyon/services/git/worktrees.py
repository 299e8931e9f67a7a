"""Git worktrees per attempt: naming, creation, recreation on demand, removal, copy-files and cleanup.

Every attempt gets a branch ``<prefix>/<short>-<slug>`` and a linked worktree ``<base>/<short>-<slug>``
(spec §6). Branches, metadata checks and pruning use libgit2. The checkout itself runs ``git worktree add``
(argv list, no shell, hooks disabled)
because bench/git_ops.py measured libgit2's ``add_worktree`` at 2.0x (2,000 files) to 2.2-2.8x (20,000
files) the time of ``git worktree add`` (libgit2's checkout does several times the user-space work
per file); libgit2 remains the fallback when no ``git`` executable is installed.

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
import fnmatch
import logging
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pygit2

from anyon.services.git.errors import (
    BranchExists,
    BranchNotFound,
    GitCommandFailed,
    InvalidPath,
    NotARepository,
    WorktreeError,
)
from anyon.services.git.isolation import isolate_checkout, view_dir
from anyon.services.git.locks import PathLocks
from anyon.services.git.repo import (
    check_lookup_name,
    is_within,
    open_repo,
    run_git,
    safe_relative_path,
    validate_branch_name,
)

log = logging.getLogger(__name__)

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(title: str) -> str:
    """Spec §6: lower-case, runs outside ``[a-z0-9]`` → ``-``, trim ``-``, at most 16 chars, trim again."""
    slug = _NON_ALNUM.sub("-", title.lower()).strip("-")
    return slug[:16].rstrip("-")


def short_id(attempt_id: str | uuid.UUID) -> str:
    """The first 4 hex characters of the attempt UUID."""
    try:
        return uuid.UUID(str(attempt_id)).hex[:4]
    except ValueError as exc:
        raise InvalidPath(f"'{attempt_id}' is not an attempt id (a UUID)") from exc


def _safe_rmtree(path: str) -> None:
    """Remove ``path`` without following any symlink out of it (a symlink itself is only unlinked)."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def _read_gitdir_file(path: str) -> str | None:
    """The target of a ``gitdir: <path>`` pointer file, or None."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(4096).strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    return text[len("gitdir:") :].strip()


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


def _copy_into(src: str, worktree: str, rel: str) -> None:
    """Copy ``src`` (a file or a directory tree) to ``worktree/rel`` without following any link there.

    A symlink committed on the branch (or planted in the worktree) where a copied file or folder goes is
    refused, never written through: each target is opened relative to its parent directory's descriptor
    with ``O_NOFOLLOW``, and the parents are created and entered the same way (THREAT-MODEL rule 3).
    Links inside ``src`` itself are copied as links.
    """
    parts = [p for p in rel.split(os.sep) if p]
    root = os.open(worktree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        parent = root
        for part in parts[:-1]:
            parent = _enter_dir(parent, part, close_parent=parent != root)
        _copy_entry(src, parent, parts[-1])
        if parent != root:
            os.close(parent)
    finally:
        os.close(root)


def write_into(worktree: str, rel: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``worktree/rel`` without following any link the worktree holds.

    The parents are entered as :func:`_copy_into` does; the file is written under a fresh temporary
    name (``O_EXCL | O_NOFOLLOW``) and renamed over ``rel``, so a symlink or hard link planted at that
    name is replaced, never written through (THREAT-MODEL rule 3).
    """
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise InvalidPath(f"'{rel}' is not a plain relative path")
    root = os.open(worktree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    parent = root
    try:
        for part in parts[:-1]:
            parent = _enter_dir(parent, part, close_parent=parent != root)
        temp = f".{parts[-1]}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=parent)
        try:
            os.fchmod(fd, mode)  # whatever the umask: the agent (the container's user) reads it
            with os.fdopen(fd, "wb") as writer:
                writer.write(data)
            os.rename(temp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise
    finally:
        if parent != root:
            os.close(parent)
        os.close(root)


def _enter_dir(parent: int, name: str, *, close_parent: bool) -> int:
    """Open (creating it) the directory ``name`` under ``parent``; a link there is refused."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        raise InvalidPath(f"'{name}' in the worktree is a link or not a directory") from exc
    finally:
        if close_parent:
            os.close(parent)
    return fd


def _copy_entry(src: str, parent: int, name: str) -> None:
    if os.path.islink(src):
        if _is_link_at(parent, name):
            os.unlink(name, dir_fd=parent)
        os.symlink(os.readlink(src), name, dir_fd=parent)
    elif os.path.isdir(src):
        fd = _enter_dir(parent, name, close_parent=False)
        try:
            for entry in os.scandir(src):
                _copy_entry(entry.path, fd, entry.name)
        finally:
            os.close(fd)
    else:
        if _is_link_at(parent, name):
            raise InvalidPath(f"'{name}' in the worktree is a symbolic link; not writing through it")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        out = os.open(name, flags, os.stat(src).st_mode & 0o777, dir_fd=parent)
        with open(src, "rb") as reader, os.fdopen(out, "wb") as writer:
            shutil.copyfileobj(reader, writer)


def _is_link_at(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _same(a: str, b: str) -> bool:
    return os.path.normpath(os.path.realpath(a)) == os.path.normpath(os.path.realpath(b))


class WorktreeManager:
    """Attempt worktrees; with ``isolated`` (cloud mode) each one also gets a repository of its own.

    Isolated: ``git worktree add`` still makes the checkout and the host's metadata in
    ``<repo>/.git/worktrees/<name>`` (the *view* the server reads the attempt through), then the
    worktree's ``.git`` pointer file is replaced by a repository of the attempt's own (see
    :func:`isolate_checkout`). The agent's container mounts that worktree and the project's object store
    read-only; nothing it can write is read by git on the host as configuration.
    """

    def __init__(self, base_dir: str, *, isolated: bool = False) -> None:
        self.base_dir = os.path.normpath(os.path.abspath(os.path.expanduser(base_dir)))
        self.isolated = isolated
        self._path_locks = PathLocks()
        self._repo_locks = PathLocks()

    # ------------------------------------------------------------------------------------------ naming

    @staticmethod
    def folder_name(attempt_id: str | uuid.UUID, task_title: str) -> str:
        return f"{short_id(attempt_id)}-{slugify(task_title)}"

    @classmethod
    def branch_name(cls, prefix: str | None, attempt_id: str | uuid.UUID, task_title: str) -> str:
        """``<prefix>/<short>-<slug>``, or ``<short>-<slug>`` with an empty prefix; validated."""
        name = cls.folder_name(attempt_id, task_title)
        prefix = (prefix or "").strip().strip("/")
        return validate_branch_name(f"{prefix}/{name}" if prefix else name)

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
        norm = os.path.normpath(os.path.abspath(path))
        name = os.path.basename(norm)
        if name in ("", ".", "..") or not os.path.isabs(path):
            return False
        return _same(os.path.dirname(norm), self.base_dir)

    def _managed(self, path: str) -> str:
        if not isinstance(path, str) or not path or not self.is_managed(path):
            raise InvalidPath(f"'{path}' is not inside the managed worktree directory '{self.base_dir}'")
        return os.path.normpath(os.path.abspath(path))

    @contextmanager
    def lock(self, worktree_path: str) -> Iterator[None]:
        """Hold the per-path lock (callers chaining several worktree calls may take it themselves)."""
        with self._path_locks.hold(worktree_path):
            yield

    @contextmanager
    def _repo_lock(self, repo: pygit2.Repository) -> Iterator[None]:
        with self._repo_locks.hold(repo.path):
            yield

    def hold_repo(self, repo: pygit2.Repository) -> contextlib.AbstractContextManager[None]:
        """The per-repository lock :meth:`create` holds, for other modules that make branches."""
        return self._repo_lock(repo)

    # ------------------------------------------------------------------------------------ create / ensure

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
        path = self._managed(worktree_path)
        with self.lock(path):
            try:
                os.makedirs(self.base_dir, exist_ok=True)
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
        path = self._managed(worktree_path)
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
        with self.lock(path), self._repo_lock(repo):
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
            self._drop_stale_metadata(repo, name)
            try:
                os.makedirs(self.base_dir, exist_ok=True)
            except OSError as exc:
                raise WorktreeError(f"Cannot create the worktree directory '{self.base_dir}': {exc}") from exc
            created = repo.branches.local.create(branch, base.peel(pygit2.Commit))
            try:
                self._add(repo, name, path, created)
            except (pygit2.GitError, OSError, ValueError, GitCommandFailed) as exc:
                self._teardown(repo, name, path)
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
        if wt is None or wt.is_prunable or not _same(wt.path, path):
            return False
        try:  # isolated: the host's view, never the agent's .git
            open_repo(self._metadata_dir(repo, name) if self.isolated else path)
        except NotARepository:
            return False
        return True

    def ensure(self, repo_path: str, branch: str, worktree_path: str) -> bool:
        """Recreate the worktree for the existing ``branch`` when the folder or git's metadata is gone.

        Returns True when it had to recreate. Steps (spec §6): drop what is left (metadata, folder), prune,
        re-add; one retry after another metadata cleanup.
        """
        path = self._managed(worktree_path)
        check_lookup_name(branch)
        repo = open_repo(repo_path)
        name = os.path.basename(path)
        with self.lock(path), self._repo_lock(repo):
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
                self._teardown(repo, name, path)
                try:
                    self._add(repo, name, path, ref)
                    return True
                except (pygit2.GitError, OSError, ValueError, GitCommandFailed) as exc:
                    last = exc
            self._teardown(repo, name, path)
            raise WorktreeError(f"Cannot recreate worktree '{path}' for '{branch}': {last}")

    def _migrate(self, repo: pygit2.Repository, name: str, path: str, branch: str) -> bool:
        """A worktree made before isolation (``.git`` a pointer file): give it its own repository in place.

        Uncommitted work stays; only a pointer that leads back to this repository's metadata of the same
        name is converted. Returns True when it converted one.
        """
        dotgit = os.path.join(path, ".git")
        if os.path.islink(dotgit) or not os.path.isfile(dotgit):
            return False
        gitdir = _read_gitdir_file(dotgit)
        if gitdir is None or not _same(gitdir, self._metadata_dir(repo, name)):
            return False
        log.info("giving worktree %s a repository of its own (made before attempt isolation)", path)
        isolate_checkout(repo, name, path, branch)
        return True

    # -------------------------------------------------------------------------------------------- remove

    def infer_repo_path(self, worktree_path: str) -> str | None:
        """The main repository of a worktree, from its ``.git`` pointer file (verified both ways)."""
        gitdir = _read_gitdir_file(os.path.join(worktree_path, ".git"))
        if not gitdir:
            return None
        back = _read_gitdir_file(os.path.join(gitdir, "gitdir")) or self._read_plain(
            os.path.join(gitdir, "gitdir")
        )
        if back is None or not _same(back, os.path.join(worktree_path, ".git")):
            return None
        common = os.path.dirname(os.path.dirname(os.path.normpath(gitdir)))  # <repo>/.git
        try:
            repo = pygit2.Repository(common)
        except pygit2.GitError:
            return None
        return str(repo.workdir or repo.path)

    @staticmethod
    def _read_plain(path: str) -> str | None:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read(4096).strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def remove(self, repo_path: str | None, worktree_path: str) -> bool:
        """Force-remove a worktree: its folder, its git metadata, then prune. Returns True if anything went.

        ``repo_path`` may be None or stale; the repository is then inferred from the worktree's ``.git``
        file, and if that fails only the folder is removed.
        """
        path = self._managed(worktree_path)
        name = os.path.basename(path)
        with self.lock(path):
            repo: pygit2.Repository | None = None
            for candidate in (repo_path, self.infer_repo_path(path)):
                if candidate:
                    try:
                        repo = open_repo(candidate)
                        break
                    except NotARepository:
                        continue
            if repo is None:
                return self._delete_folder(path, "worktree without a known repository")
            with self._repo_lock(repo):
                return self._teardown(repo, name, path)

    def _delete_folder(self, path: str, why: str) -> bool:
        if not os.path.lexists(path):
            return False
        if not self.is_managed(path):  # belt and braces: never outside the base dir
            raise InvalidPath(f"Refusing to delete '{path}' outside '{self.base_dir}'")
        log.info("deleting %s (%s)", path, why)
        _safe_rmtree(path)
        return True

    def _metadata_dir(self, repo: pygit2.Repository, name: str) -> str:
        return os.path.join(repo.path, "worktrees", name)

    def _drop_stale_metadata(self, repo: pygit2.Repository, name: str) -> None:
        meta = self._metadata_dir(repo, name)
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

    def _teardown(self, repo: pygit2.Repository, name: str, path: str) -> bool:
        """Folder, then our metadata (only if it points back at ``path``), then prune what is prunable."""
        removed = self._delete_folder(path, "worktree removal")
        meta = self._metadata_dir(repo, name)
        back = self._read_plain(os.path.join(meta, "gitdir"))
        if os.path.isdir(meta) and (back is None or _same(os.path.dirname(back), path)):
            log.info("deleting worktree metadata %s", meta)
            shutil.rmtree(meta, ignore_errors=True)
            removed = True
        self._prune(repo)
        return removed

    @staticmethod
    def _prune(repo: pygit2.Repository) -> None:
        """``git worktree prune``: forget worktrees whose folders are gone (metadata only)."""
        for other in repo.list_worktrees():
            try:
                wt = repo.lookup_worktree(other)
                if wt is not None and wt.is_prunable:
                    log.info("pruning worktree metadata of %s", other)
                    wt.prune(True)
            except (pygit2.GitError, KeyError, OSError):
                continue

    # ---------------------------------------------------------------------------------------- copy files

    def copy_files(self, repo_path: str, worktree_path: str, copy_files_spec: str | None) -> list[str]:
        """Copy the project's ``copy_files`` (comma-separated paths or globs) from the repo to the worktree.

        Entries with ``..``, absolute paths, sources that resolve outside the repository and missing files
        are skipped with a warning: a bad entry in project settings must not stop an attempt from starting.
        Returns the repository-relative paths that were copied.
        """
        path = self._managed(worktree_path)
        repo_root = os.path.realpath(repo_path)
        copied: list[str] = []
        for raw in (copy_files_spec or "").replace("\n", ",").split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                rel = safe_relative_path(entry)
            except InvalidPath as exc:
                log.warning("copy_files: skipping %r: %s", entry, exc)
                continue
            if any(c in rel for c in "*?["):
                matches = sorted(
                    os.path.relpath(p, repo_root)
                    for p in map(str, Path(repo_root).glob(rel))
                    if not fnmatch.fnmatch(os.path.relpath(p, repo_root), ".git*/**")
                )
            else:
                matches = [rel]
            for item in matches:
                src = os.path.join(repo_root, item)
                if item.split(os.sep)[0] == ".git" or not os.path.lexists(src):
                    if not any(c in rel for c in "*?["):
                        log.warning("copy_files: %s does not exist in %s", item, repo_root)
                    continue
                if not is_within(src, repo_root):
                    log.warning("copy_files: skipping %s: it resolves outside the repository", item)
                    continue
                try:
                    _copy_into(src, path, item)
                except (OSError, InvalidPath) as exc:
                    log.warning("copy_files: skipping %s: %s", item, exc)
                    continue
                copied.append(item.replace(os.sep, "/"))
        return copied

    # ------------------------------------------------------------------------------------------- cleanup

    def sweep_orphans(self, known_paths: Iterable[str | None], dry_run: bool = False) -> list[str]:
        """Remove every entry of the base dir that no attempt's ``container_ref`` names.

        Directories are removed (with their git metadata when it points back at them), symlinks are
        unlinked without being followed, plain files are left alone. With ``dry_run`` nothing is removed;
        what would be is logged and returned.
        """
        if not os.path.isdir(self.base_dir):
            return []
        known = {os.path.normpath(os.path.abspath(p)) for p in known_paths if p}
        orphans: list[str] = []
        for entry in sorted(os.scandir(self.base_dir), key=lambda e: e.name):
            full = os.path.join(self.base_dir, entry.name)
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
        with self.lock(path):
            if os.path.islink(path):
                self._delete_folder(path, "orphan symlink in the worktree directory")
                return
            repo_path = self.infer_repo_path(path)
            self._delete_folder(path, "orphan worktree")
            if repo_path:
                try:
                    repo = open_repo(repo_path)
                except NotARepository:
                    return
                with self._repo_lock(repo):
                    self._prune(repo)

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
