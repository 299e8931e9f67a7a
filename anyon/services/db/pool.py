"""Pooled peewee databases: a request reuses an open connection instead of opening one.

Every service call runs ``with database.connection():`` in a worker thread. Without a pool that opened a
connection (and, on SQLite, ran the four pragmas), ran the query, and closed it again; on SQLite, closing
the last connection also checkpoints the WAL and deletes it, so the next request recreated it. Under load
that was half the server's CPU time on a short read. With the pool, ``close()`` hands the connection back
and the next ``connect()`` takes it, pragmas already set.

The pool is peewee's own (``playhouse.pool``) with two additions:

* connections are never shared: one thread holds one connection between its ``connect`` and ``close``,
  as before (SQLite connections are opened with ``check_same_thread=False`` only so that another thread
  may take them *after* they were handed back);
* a thread that ended without closing its connection (peewee connects lazily, so a background thread may
  query without ``connection()``) no longer holds it: before the pool, the connection closed with the
  thread's state; now the pool would keep it "in use" for ever, so it is closed at the next checkout.

Connections idle for :data:`STALE_SECONDS` are closed rather than reused (a PostgreSQL server or a proxy
may have dropped them); the pool is not bounded (the number of worker threads bounds it).
"""

from __future__ import annotations

import threading
from typing import Any

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

#: Seconds after which a pooled connection is closed instead of reused.
STALE_SECONDS = 300


class _OwnedConnections:
    """Mixin for a ``PooledDatabase``: remembers which thread holds each connection (see the module doc)."""

    _pool_lock: threading.RLock
    _in_use: dict[int, Any]

    def _owners(self) -> dict[int, threading.Thread]:
        owners: dict[int, threading.Thread] | None = self.__dict__.get("_anyon_owners")
        if owners is None:
            owners = self.__dict__["_anyon_owners"] = {}
        return owners

    def _connect(self) -> Any:
        with self._pool_lock:
            self._reclaim_orphans()
            conn = super()._connect()  # type: ignore[misc]
            self._owners()[id(conn)] = threading.current_thread()
            return conn

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        with self._pool_lock:
            self._owners().pop(id(conn), None)
            super()._close(conn, close_conn)  # type: ignore[misc]

    def _reclaim_orphans(self) -> None:
        owners = self._owners()
        for key, thread in list(owners.items()):
            if thread.is_alive():
                continue
            del owners[key]
            orphan = self._in_use.pop(key, None)
            if orphan is not None:
                self._close_raw(orphan.connection)  # type: ignore[attr-defined]

    def close_all_connections(self) -> None:
        """Close every connection, idle or held (at shutdown, when no request runs any more)."""
        self.close_all()  # type: ignore[attr-defined]
        with self._pool_lock:
            self._owners().clear()


class SqlitePool(_OwnedConnections, PooledSqliteDatabase):  # type: ignore[misc]
    """``SqliteDatabase`` whose connections are pooled."""

    def __init__(self, database: str, *, timeout: float, **kwargs: Any) -> None:
        super().__init__(
            database, max_connections=None, stale_timeout=STALE_SECONDS, check_same_thread=False, **kwargs
        )
        # PooledDatabase takes ``timeout`` as its own wait for a free connection (none: it is unbounded);
        # SQLite's is the busy timeout, set here as SqliteDatabase.init would have.
        self._timeout = timeout


class PostgresPool(_OwnedConnections, PooledPostgresqlDatabase):  # type: ignore[misc]
    """``PostgresqlDatabase`` whose connections are pooled; a broken connection is dropped, not reused."""

    def __init__(self, database: str, **kwargs: Any) -> None:
        super().__init__(database, max_connections=None, stale_timeout=STALE_SECONDS, **kwargs)


def close_all(db: pw.Database) -> None:
    """Close every connection of ``db`` (pooled or not)."""
    if isinstance(db, _OwnedConnections):
        db.close_all_connections()
    elif not db.is_closed():
        db.close()
