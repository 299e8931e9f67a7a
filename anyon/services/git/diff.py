"""Diff objects of spec §2.4, built with libgit2 only.

The attempt diff compares the merge-base of the attempt branch and its target with the *working tree*,
including staged, unstaged and untracked (non-ignored) files. The reference does that with a temporary index
and ``git add -A``; here the same result comes from libgit2's "tree → index" diff merged with the "index →
workdir" diff (``git_diff_tree_to_workdir_with_index`` semantics). That reuses the worktree index as a stat
cache, writes no objects into the repository, and keeps a 500-file diff on a 20,000-file tree well under a
second. Renames are found with libgit2's similarity search, untracked files included as rename targets.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pygit2
from pygit2.enums import DeltaStatus, DiffFind, DiffOption, FileMode

DEFAULT_CONTENT_BUDGET_BYTES = 200 * 1024 * 1024

DIFF_FLAGS = (
    DiffOption.INCLUDE_UNTRACKED
    | DiffOption.RECURSE_UNTRACKED_DIRS
    | DiffOption.SHOW_UNTRACKED_CONTENT
    | DiffOption.INCLUDE_TYPECHANGE
)
FIND_FLAGS = DiffFind.FIND_RENAMES | DiffFind.FIND_FOR_UNTRACKED

_CHANGE = {
    DeltaStatus.ADDED: "added",
    DeltaStatus.UNTRACKED: "added",
    DeltaStatus.DELETED: "deleted",
    DeltaStatus.MODIFIED: "modified",
    DeltaStatus.TYPECHANGE: "modified",
    DeltaStatus.RENAMED: "renamed",
    DeltaStatus.COPIED: "copied",
}
_SKIP = {DeltaStatus.UNMODIFIED, DeltaStatus.IGNORED, DeltaStatus.UNREADABLE}


class ContentBudget:
    """How many bytes of file contents may still be sent (spec: 200 MB per diff stream).

    A stream creates one budget and passes it to every :func:`GitService.diff` / ``diff_path`` call, so
    the limit holds across the initial snapshot and the live updates. Thread-safe.
    """

    def __init__(self, total_bytes: int = DEFAULT_CONTENT_BUDGET_BYTES) -> None:
        self._remaining = total_bytes
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        return self._remaining

    def take(self, size: int) -> bool:
        with self._lock:
            if size > self._remaining:
                return False
            self._remaining -= size
            return True


def diff_key(diff: dict[str, Any]) -> str:
    """The ``entries`` key of a Diff: ``newPath``, or ``oldPath`` when there is no new path."""
    return str(diff["newPath"] or diff["oldPath"])


def worktree_diff(wrepo: pygit2.Repository, base_tree: pygit2.Tree) -> pygit2.Diff:
    """Base tree → working tree (index used as a stat cache), untracked included, renames found."""
    index = wrepo.index
    diff = base_tree.diff_to_index(index, DIFF_FLAGS)
    diff.merge(index.diff_to_workdir(DIFF_FLAGS))
    diff.find_similar(FIND_FLAGS)
    return diff


def tree_diff(repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree) -> pygit2.Diff:
    diff = (
        old.diff_to_tree(new, flags=DiffOption.INCLUDE_TYPECHANGE)
        if old is not None
        else new.diff_to_tree(swap=True, flags=DiffOption.INCLUDE_TYPECHANGE)
    )
    diff.find_similar(DiffFind.FIND_RENAMES)
    return diff


def _decode(data: bytes | None) -> tuple[str | None, bool]:
    """(text, ok): contents that are not UTF-8 text are never sent."""
    if data is None:
        return None, True
    if b"\x00" in data[:8000]:
        return None, False
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return None, False


def _read_worktree_file(workdir: str, rel: str) -> bytes | None:
    path = os.path.join(workdir, rel)
    try:
        if os.path.islink(path):
            return os.fsencode(os.readlink(path))
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _blob(repo: pygit2.Repository, oid: pygit2.Oid) -> bytes | None:
    if not any(oid.raw):
        return None
    try:
        obj = repo[oid]
    except KeyError:
        return None
    return obj.data if isinstance(obj, pygit2.Blob) else None


def iter_diffs(
    repo: pygit2.Repository,
    diff: pygit2.Diff,
    *,
    workdir: str | None,
    stats_only: bool,
    budget: ContentBudget | None,
    only_path: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Turn a libgit2 diff into spec Diff dicts; ``workdir`` set means the new side lives on disk."""
    for i, delta in enumerate(diff.deltas):
        status = delta.status
        if status in _SKIP:
            continue
        old_path: str | None = delta.old_file.path
        new_path: str | None = delta.new_file.path
        if status in (DeltaStatus.ADDED, DeltaStatus.UNTRACKED):
            old_path = None
        elif status == DeltaStatus.DELETED:
            new_path = None
        if only_path is not None and only_path not in (old_path, new_path):
            continue
        if delta.old_file.mode == FileMode.COMMIT or delta.new_file.mode == FileMode.COMMIT:
            additions = deletions = 0  # submodule pointer: no lines to count
            binary = True
        else:
            patch = diff[i]
            _, additions, deletions = patch.line_stats if patch is not None else (0, 0, 0)
            binary = bool(patch is not None and patch.delta.is_binary)
        change = _CHANGE.get(status, "modified")
        if (
            change == "modified"
            and status == DeltaStatus.MODIFIED
            and delta.old_file.mode != delta.new_file.mode
            and additions == 0
            and deletions == 0
        ):
            change = "permissionChange"
        old_content: str | None = None
        new_content: str | None = None
        omitted = stats_only or binary
        if not omitted:
            old_bytes = _blob(repo, delta.old_file.id) if old_path is not None else None
            if new_path is None:
                new_bytes = None
            elif workdir is not None:
                new_bytes = _read_worktree_file(workdir, new_path)
            else:
                new_bytes = _blob(repo, delta.new_file.id)
            old_content, ok_old = _decode(old_bytes)
            new_content, ok_new = _decode(new_bytes)
            size = len(old_bytes or b"") + len(new_bytes or b"")
            if not (ok_old and ok_new) or (budget is not None and not budget.take(size)):
                omitted = True
                old_content = new_content = None
        yield {
            "change": change,
            "oldPath": old_path,
            "newPath": new_path,
            "oldContent": old_content,
            "newContent": new_content,
            "contentOmitted": omitted,
            "additions": additions,
            "deletions": deletions,
        }
