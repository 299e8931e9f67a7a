"""Live diff of one attempt's worktree: the initial Diff per file, then add/remove as files change.

Why a watcher and not polling: the Diffs tab of the UI (spec anyon-api.md §2.4) must follow what the agent
writes while it writes it, and a full ``git diff`` of a big worktree every second costs far more than one
per-file diff when a file actually changes. :func:`watchfiles.awatch` reports changed paths (debounced,
``.git`` ignored); each changed path gets a one-file diff (:meth:`GitService.diff_path`) and becomes
``add /entries/<path>`` (changed) or ``remove /entries/<path>`` (no longer differs). A burst of many paths
at once (a checkout, an ``npm install``) is answered with one full diff compared with what the client
holds, instead of hundreds of full-tree diffs.

The stream keeps, per client, only the set of keys it sent and a fingerprint of each Diff (to skip re-sending
an identical one), never file contents. One :class:`ContentBudget` covers the snapshot and every live update,
so the spec's 200 MB content limit holds over the whole stream.

Nothing here knows about WebSockets: the API layer sends the op batches this yields.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from watchfiles import Change, awatch

from anyon.services.git import GitService
from anyon.services.git.diff import ContentBudget
from anyon.services.git.errors import InvalidPath
from anyon.services.logs.jsonpatch import Op, diff_entry_add, diff_entry_remove, diff_key

Diff = dict[str, Any]

BURST_PATHS = 32
"""More changed paths than this in one debounced batch → one full diff instead of per-file diffs."""


@dataclass(frozen=True)
class DiffTarget:
    """What an attempt diff compares: its worktree (or branch tip) against the merge-base with the target."""

    repo_path: str
    worktree_path: str | None
    branch: str
    target_branch: str
    view_path: str | None = None
    """Where libgit2 opens the checkout (the host's view of an isolated attempt); the worktree if unset."""

    @property
    def view(self) -> str | None:
        return self.view_path or self.worktree_path


def _fingerprint(diff: Diff) -> str:
    return hashlib.blake2b(json.dumps(diff, sort_keys=True).encode(), digest_size=16).hexdigest()


class AttemptDiffStream:
    """The op batches of one client's diff stream; create one per connection and :meth:`close` it."""

    def __init__(
        self,
        git: GitService,
        target: DiffTarget,
        *,
        stats_only: bool = False,
        debounce_ms: int = 200,
        budget: ContentBudget | None = None,
        appear_poll_seconds: float = 1.0,
    ) -> None:
        self._git = git
        self.target = target
        self.stats_only = stats_only
        self.debounce_ms = debounce_ms
        self._budget = budget if budget is not None else ContentBudget(git.content_budget_bytes)
        self._appear_poll = appear_poll_seconds
        self._sent: dict[str, str] = {}  # key → fingerprint of the Diff the client holds
        self._stop = asyncio.Event()

    @property
    def keys(self) -> set[str]:
        """The entry keys the client holds right now."""
        return set(self._sent)

    def close(self) -> None:
        """Stop watching (the watcher thread notices within one step)."""
        self._stop.set()

    # --- snapshot --------------------------------------------------------------------------------

    async def initial(self) -> list[Op]:
        """One ``add /entries/<path>`` per changed file (the spec sends them one per frame)."""
        diffs = await asyncio.to_thread(self._full)
        ops = []
        for d in diffs:
            key = diff_key(d)
            self._sent[key] = _fingerprint(d)
            ops.append(diff_entry_add(key, d))
        return ops

    def _full(self) -> list[Diff]:
        t = self.target
        return self._git.diff(t.repo_path, t.view, t.branch, t.target_branch, self.stats_only, self._budget)

    def _one(self, path: str) -> Diff | None:
        t = self.target
        return self._git.diff_path(
            t.repo_path, t.view, t.branch, t.target_branch, path, self.stats_only, self._budget
        )

    # --- live ------------------------------------------------------------------------------------

    async def changes(self) -> AsyncIterator[list[Op]]:
        """Op batches, one per debounced group of filesystem events; ends when :meth:`close` is called.

        A worktree that does not exist (yet) is waited for, not treated as an error.
        """
        root = self.target.worktree_path
        if not root:
            await self._stop.wait()
            return
        late = not os.path.isdir(root)
        while not os.path.isdir(root):
            try:
                await asyncio.wait_for(self._stop.wait(), self._appear_poll)
                return
            except TimeoutError:
                continue
        if late:  # the worktree appeared after the snapshot was taken: bring the client up to date first
            ops = await asyncio.to_thread(self._resync_ops)
            if ops:
                yield ops
        async for batch in self._watch(root):
            yield batch

    async def _watch(self, root: str) -> AsyncIterator[list[Op]]:
        real_root = os.path.realpath(root)
        accept = _outside_git(real_root)
        watching = False
        async for changes in awatch(
            real_root,
            watch_filter=accept,
            debounce=self.debounce_ms,
            stop_event=self._stop,
            rust_timeout=500,
            yield_on_timeout=True,
            recursive=True,
        ):
            paths = sorted({_relative(real_root, p) for _change, p in changes} - {""})
            if not watching:
                # the first yield means the watcher runs: whatever changed between the snapshot and now
                # was not seen by it, so compare once with a full diff
                watching = True
                ops = await asyncio.to_thread(self._resync_ops)
                if ops:
                    yield ops
            if not paths:
                continue
            ops = await asyncio.to_thread(self._ops_for, paths)
            if ops:
                yield ops

    def _ops_for(self, paths: list[str]) -> list[Op]:
        if len(paths) > BURST_PATHS:
            return self._resync_ops()
        ops: list[Op] = []
        for path in paths:
            touched = {path} | {k for k in self._sent if k.startswith(path + "/")}
            for p in sorted(touched):
                ops += self._path_ops(p)
        return ops

    def _path_ops(self, path: str) -> list[Op]:
        try:
            diff = self._one(path)
        except InvalidPath:
            return []  # not a path git can name
        ops: list[Op] = []
        key = diff_key(diff) if diff is not None else None
        if key != path and path in self._sent:
            del self._sent[path]
            ops.append(diff_entry_remove(path))
        if diff is not None and key is not None:
            fp = _fingerprint(diff)
            if self._sent.get(key) != fp:
                self._sent[key] = fp
                ops.append(diff_entry_add(key, diff))
        return ops

    def _resync_ops(self) -> list[Op]:
        """Bring the client's entries in line with a full diff: adds for new/changed, removes for gone."""
        fresh = {diff_key(d): d for d in self._full()}
        ops: list[Op] = [diff_entry_remove(k) for k in sorted(set(self._sent) - set(fresh))]
        for k in list(self._sent):
            if k not in fresh:
                del self._sent[k]
        for key, diff in fresh.items():
            fp = _fingerprint(diff)
            if self._sent.get(key) != fp:
                self._sent[key] = fp
                ops.append(diff_entry_add(key, diff))
        return ops


def _relative(root: str, path: str) -> str:
    rel = os.path.relpath(path, root)
    return "" if rel == "." or rel.startswith("..") else rel.replace(os.sep, "/")


def _outside_git(root: str) -> Callable[[Change, str], bool]:
    def accept(_change: Change, path: str) -> bool:
        rel = _relative(root, path)
        return bool(rel) and ".git" not in rel.split("/")

    return accept


__all__ = ["BURST_PATHS", "AttemptDiffStream", "DiffTarget"]
