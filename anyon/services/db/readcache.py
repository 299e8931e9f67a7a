"""Answers of hot reads kept until the database changes: the board and the project list under polling.

Every open board polls ``GET /api/tasks?project_id=`` and ``GET /api/projects``; a 1,000-task board costs
~10 ms of CPU to query and format, the same answer each time while nothing changes. :class:`ReadCache`
keeps the last answer of such a read together with the database's *data version* at the time it was
read, and serves it while the version is unchanged.

The version is SQLite's ``PRAGMA data_version`` read on a connection of its own (:class:`DataVersion`)
that never writes: its value changes whenever *any* other connection commits, from this process or from
another one (the CLI, a second server, a test poking the file), so a hit can never be older than the last
commit. The version is read *before* the query runs, so a commit that lands during the query leaves the
entry tagged with the older version: the next read misses. Any commit invalidates every entry; that is
coarse (a running agent's log writes keep the cache cold) and always correct. PostgreSQL has no such
cheap, global counter: there, nothing is cached.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar
from urllib.parse import quote

T = TypeVar("T")

#: Entries kept at most (one per board polled recently, plus the project list).
MAX_ENTRIES = 64


class DataVersion:
    """``PRAGMA data_version`` of an SQLite file, on a connection of its own that only ever reads it."""

    def __init__(self, path: str, busy_timeout_s: float) -> None:
        self._path = path
        self._timeout = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def current(self) -> int | None:
        """The version now, or None when it cannot be read (then nothing may be served from a cache)."""
        with self._lock:
            try:
                if self._conn is None:
                    uri = f"file:{quote(self._path)}?mode=rw"  # never creates the file
                    self._conn = sqlite3.connect(
                        uri, uri=True, timeout=self._timeout, check_same_thread=False, isolation_level=None
                    )
                row = self._conn.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                self._close()
                return None
            return int(row[0]) if row is not None else None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class ReadCache:
    """Results of reads, each valid while the database's data version stays what it was read under.

    ``version`` is None for a database without a data version (PostgreSQL): every read then runs.
    Cached values are shared between callers: they must not be mutated (callers hand out copies).
    """

    def __init__(self, version: DataVersion | None, max_entries: int = MAX_ENTRIES) -> None:
        self._version = version
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[int, object]] = OrderedDict()

    def fetch(self, key: Hashable, read: Callable[[], T]) -> T:
        """The cached value of ``key`` if the database has not changed since it was read, else ``read()``."""
        version = self._version.current() if self._version is not None else None
        if version is None:
            return read()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(key)
                return entry[1]  # type: ignore[return-value]
        value = read()
        with self._lock:
            self._entries[key] = (version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
