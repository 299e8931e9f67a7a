"""File search for the task form's @-file picker and the settings screen (spec §6).

One in-memory index per repository lists every file and directory (minus ``.git`` and the heavy build
dirs) with an ``is_ignored`` flag, plus a change-frequency score from recent history used to rank matches.
An entry is only trusted while the repository's HEAD is the commit it was built from; a moved HEAD (new
commit, branch switch) rebuilds it on the next search. The index comes from libgit2 (index entries plus a
status scan for untracked and ignored paths), which is as fast as a plain directory walk, so a miss simply
builds synchronously instead of answering from a second, slower code path.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import pygit2
from pygit2.enums import DiffOption, FileStatus, SortMode

from anyon.services.git.errors import GitServiceError
from anyon.services.git.repo import open_repo

SearchMode = Literal["taskform", "settings"]
MAX_RESULTS = 10
HEAVY_DIRS = frozenset({".git", "node_modules", "target", "dist", "build"})
HISTORY_COMMITS = 100
_MATCH_RANK = {"FileName": 0, "DirectoryName": 1, "FullPath": 2}


class InvalidSearch(GitServiceError):
    kind = "InvalidSearch"


@dataclass
class _Entry:
    path: str
    is_file: bool
    is_ignored: bool


@dataclass
class _Index:
    head: str | None
    built_at: float
    entries: list[_Entry]
    scores: dict[str, float] = field(default_factory=dict)


def _heavy(path: str) -> bool:
    return any(part in HEAVY_DIRS for part in path.split("/"))


def _history_scores(repo: pygit2.Repository) -> dict[str, float]:
    """Recency-weighted change counts of paths touched by the last commits of HEAD."""
    scores: dict[str, float] = {}
    if repo.head_is_unborn:
        return scores
    for age, commit in enumerate(repo.walk(repo.head.target, SortMode.TIME)):
        if age >= HISTORY_COMMITS:
            break
        if len(commit.parents) > 1:
            continue
        parent = commit.parents[0].tree if commit.parents else None
        diff = (
            parent.diff_to_tree(commit.tree, flags=DiffOption.SKIP_BINARY_CHECK)
            if parent is not None
            else commit.tree.diff_to_tree(swap=True)
        )
        weight = 1.0 + (HISTORY_COMMITS - age) / HISTORY_COMMITS
        for delta in diff.deltas:
            path = delta.new_file.path
            scores[path] = scores.get(path, 0.0) + weight
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                scores[d] = scores.get(d, 0.0) + weight / 4
    return scores


def build_index(repo_path: str) -> _Index:
    repo = open_repo(repo_path)
    head = None if repo.head_is_unborn else str(repo.head.target)
    files: dict[str, bool] = {}  # path -> ignored
    for entry in repo.index:
        if not _heavy(entry.path):
            files[entry.path] = False
    for path, flags in repo.status(untracked_files="all", ignored=True).items():
        if _heavy(path.rstrip("/")):
            continue
        if flags & FileStatus.IGNORED:
            files[path.rstrip("/")] = True
        elif flags & FileStatus.WT_NEW:
            files[path] = False
        elif flags & FileStatus.WT_DELETED:
            files.pop(path, None)
    entries: list[_Entry] = []
    dirs: dict[str, bool] = {}
    workdir = str(repo.workdir)
    for path, ignored in files.items():
        is_file = not (ignored and os.path.isdir(os.path.join(workdir, path)))
        entries.append(_Entry(path, is_file, ignored))
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            dirs[d] = dirs.get(d, True) and ignored
    for d, ignored in dirs.items():
        if d not in files:
            entries.append(_Entry(d, False, ignored))
    return _Index(head=head, built_at=time.monotonic(), entries=entries, scores=_history_scores(repo))


class FileSearch:
    """LRU cache of per-repository indexes (at most ``max_repos``, each valid ``ttl_seconds``)."""

    def __init__(self, max_repos: int = 50, ttl_seconds: float = 3600.0) -> None:
        self.max_repos = max_repos
        self.ttl_seconds = ttl_seconds
        self._cache: OrderedDict[str, _Index] = OrderedDict()
        self._lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}

    @staticmethod
    def _key(repo_path: str) -> str:
        return os.path.normpath(os.path.realpath(repo_path))

    def invalidate(self, repo_path: str | None = None) -> None:
        with self._lock:
            if repo_path is None:
                self._cache.clear()
            else:
                self._cache.pop(self._key(repo_path), None)

    def warm(self, repo_path: str) -> None:
        """Build (or refresh) the index ahead of the first search, e.g. for the most active projects."""
        self._index(repo_path)

    def _current_head(self, repo_path: str) -> str | None:
        repo = open_repo(repo_path)
        return None if repo.head_is_unborn else str(repo.head.target)

    def _index(self, repo_path: str) -> _Index:
        key = self._key(repo_path)
        head = self._current_head(repo_path)
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached.head == head and time.monotonic() - cached.built_at < self.ttl_seconds:
                self._cache.move_to_end(key)
                return cached
            build_lock = self._build_locks.setdefault(key, threading.Lock())
        with build_lock:  # one build per repository at a time; latecomers reuse it
            with self._lock:
                cached = self._cache.get(key)
                if cached and cached.head == head and time.monotonic() - cached.built_at < self.ttl_seconds:
                    return cached
            index = build_index(repo_path)
            with self._lock:
                self._cache[key] = index
                self._cache.move_to_end(key)
                while len(self._cache) > self.max_repos:
                    self._cache.popitem(last=False)
            return index

    def search(self, repo_path: str, q: str, mode: str = "taskform") -> list[dict[str, Any]]:
        """SearchResult[] (at most 10): case-insensitive substring match on the repo-relative path."""
        query = (q or "").strip().lower()
        if not query:
            raise InvalidSearch("Query parameter 'q' is required and cannot be empty")
        if mode not in ("taskform", "settings"):
            raise InvalidSearch(f"Unknown search mode '{mode}' (expected 'taskform' or 'settings')")
        index = self._index(repo_path)
        found: list[tuple[int, float, int, str, dict[str, Any]]] = []
        for entry in index.entries:
            if entry.is_ignored and mode == "taskform":
                continue
            lower = entry.path.lower()
            if query not in lower:
                continue
            parts = lower.split("/")
            if query in parts[-1]:
                match = "FileName"
            elif len(parts) > 1 and query in parts[-2]:
                match = "DirectoryName"
            else:
                match = "FullPath"
            result = {"path": entry.path, "is_file": entry.is_file, "match_type": match}
            score = index.scores.get(entry.path, 0.0)
            found.append((_MATCH_RANK[match], -score, len(entry.path), entry.path, result))
        found.sort(key=lambda t: t[:4])
        return [t[4] for t in found[:MAX_RESULTS]]
