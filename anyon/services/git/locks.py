"""Named locks: one lock per worktree path or repository path.

The API calls these services through ``asyncio.to_thread``, so every call runs in a worker thread and a
plain ``threading.RLock`` is the right primitive: it serialises threads, and an event loop is never blocked
because the blocking happens on the worker. Re-entrant so that a service holding a repository lock may call
another method that takes the same lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class PathLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    @staticmethod
    def key(path: str | os.PathLike[str]) -> str:
        return os.path.normpath(os.path.abspath(os.fspath(path)))

    def get(self, path: str | os.PathLike[str]) -> threading.RLock:
        k = self.key(path)
        with self._guard:
            lock = self._locks.get(k)
            if lock is None:
                lock = self._locks[k] = threading.RLock()
            return lock

    @contextmanager
    def hold(self, path: str | os.PathLike[str]) -> Iterator[None]:
        with self.get(path):
            yield
