"""Writing into a worktree without following any link it holds: the project's ``copy_files`` and single
files the server puts there (``write_into``, e.g. attached images).

A worktree's contents are the agent's: any name in it may be a symlink pointing out of it. So every target
here is opened relative to its parent directory's descriptor with ``O_NOFOLLOW``, its parents created and
entered the same way, and a link found where a file goes is refused or replaced, never written through
(THREAT-MODEL rule 3).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import shutil
import stat
import uuid
from pathlib import Path

from .errors import InvalidPath
from .repo import is_within, safe_relative_path

log = logging.getLogger(__name__)


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


def copy_files(repo_path: str, worktree: str, copy_files_spec: str | None) -> list[str]:
    """Copy the project's ``copy_files`` (comma-separated paths or globs) from the repo to the worktree.

    Entries with ``..``, absolute paths, sources that resolve outside the repository and missing files
    are skipped with a warning: a bad entry in project settings must not stop an attempt from starting.
    Returns the repository-relative paths that were copied. ``worktree`` is a path the caller has
    already checked to be a managed worktree.
    """
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
                _copy_into(src, worktree, item)
            except (OSError, InvalidPath) as exc:
                log.warning("copy_files: skipping %s: %s", item, exc)
                continue
            copied.append(item.replace(os.sep, "/"))
    return copied
