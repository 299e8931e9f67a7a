"""Opening the database (SQLite file or PostgreSQL URL) and binding the models to it.

Binding choice: the models in ``models.py`` are declared without a database, and a ``Database`` binds all
of them to its own peewee database when it is created and again on every :meth:`Database.connect` (and via
:meth:`Database.bind`). A process therefore has one *active* Database at a time — the server has exactly
one; tests that use several open them one after the other (or call ``bind()`` to switch). No proxy and no
module-level connection exist.

Threads: the API runs peewee calls in worker threads. peewee keeps connection and transaction state per
thread (``thread_safe=True``) and connects lazily, so each worker thread gets its own connection, taken
from a pool (:mod:`anyon.services.db.pool`) and handed back at ``close()`` rather than reopened per call.
On SQLite, WAL lets readers run beside the one writer, ``busy_timeout`` makes a second writer wait instead
of failing, and write transactions start ``IMMEDIATE`` so they never deadlock upgrading a read lock.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import peewee as pw

from anyon.config.redact import redact_text, redact_url, url_secrets
from anyon.services.db import migrations
from anyon.services.db.models import ALL_MODELS
from anyon.services.db.pool import PostgresPool, SqlitePool, close_all
from anyon.services.db.readcache import DataVersion

# Column types the models use that SQLite spells differently.
_SQLITE_FIELD_TYPES = {"TIMESTAMPTZ": "TEXT"}
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class DatabaseUrlError(ValueError):
    """The database URL cannot be used (unknown scheme, relative SQLite path, bad parameter)."""


class Database:
    """One open database: the peewee handle plus the schema operations the server needs."""

    def __init__(
        self, db: pw.Database, url: str, schema: str | None = None, data_version: DataVersion | None = None
    ) -> None:
        self.db = db
        self.url = url
        #: what :class:`~anyon.services.db.readcache.ReadCache` checks; None where there is none (PostgreSQL)
        self.data_version = data_version
        self.schema = schema  # PostgreSQL schema (search_path) this database lives in, if not the default
        self._schema_ready = False
        self._lock = threading.Lock()
        self.bind()

    # --- construction ------------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, busy_timeout_ms: int = 5000) -> Database:
        """Open ``sqlite:///abs/path.db`` or ``postgresql://user[:pw]@host[:port]/db[?schema=name&…]``.

        For SQLite the parent directory is created. For PostgreSQL, the query parameters are passed to
        libpq (e.g. ``sslmode``), except ``schema``, which selects (and creates on connect) a schema to
        hold the tables — useful to give each test or instance its own namespace in one database.
        """
        if not isinstance(url, str) or not url.strip():
            raise DatabaseUrlError("database URL is empty")
        if busy_timeout_ms < 0:
            raise DatabaseUrlError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            return cls._sqlite(url, parts.netloc, unquote(parts.path), busy_timeout_ms)
        if scheme in ("postgresql", "postgres"):
            return cls._postgres(url, parts, busy_timeout_ms)
        raise DatabaseUrlError(
            f"unsupported database URL scheme {parts.scheme!r} in {redact_url(url)!r}: "
            "expected sqlite:///absolute/path.db or postgresql://user@host:port/dbname"
        )

    @classmethod
    def from_sqlite_file(cls, path: str | Path, busy_timeout_ms: int = 5000) -> Database:
        """Open (creating) the embedded SQLite database at ``path`` (must be absolute)."""
        file = Path(path)
        if not file.is_absolute():
            raise DatabaseUrlError(f"the SQLite database path {str(path)!r} must be absolute")
        return cls.from_url(f"sqlite://{file.as_posix()}", busy_timeout_ms)

    @classmethod
    def _sqlite(cls, url: str, netloc: str, path: str, busy_timeout_ms: int) -> Database:
        if netloc:
            raise DatabaseUrlError(
                f"SQLite URL {redact_url(url)!r} has a host part; write sqlite:///absolute/path.db"
            )
        # sqlite:///abs/path -> path "/abs/path"; sqlite:////abs/path (SQLAlchemy style) -> "//abs/path".
        if path.startswith("//"):
            path = path[1:]
        if not path or path == "/" or not Path(path).is_absolute():
            raise DatabaseUrlError(
                f"SQLite URL {redact_url(url)!r} must name an absolute file path (sqlite:///abs/path.db)"
            )
        file = Path(path)
        if file.is_dir():
            raise DatabaseUrlError(f"SQLite database path {file} is a directory")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUrlError(
                f"cannot create the directory of the SQLite database {file}: {exc}"
            ) from exc
        db = SqlitePool(
            str(file),
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": busy_timeout_ms,
                "synchronous": "normal",
            },
            timeout=busy_timeout_ms / 1000,
            field_types=_SQLITE_FIELD_TYPES,
            lock_type="IMMEDIATE",
        )
        version = DataVersion(str(file), busy_timeout_ms / 1000)
        return cls(db, f"sqlite://{file.as_posix()}", data_version=version)

    @classmethod
    def _postgres(cls, url: str, parts: Any, busy_timeout_ms: int) -> Database:
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise DatabaseUrlError(f"PostgreSQL URL {redact_url(url)!r} names no database")
        params: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=False))
        schema = params.pop("schema", None)
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise DatabaseUrlError(f"schema {schema!r} in the PostgreSQL URL is not a plain identifier")
        options = [params.pop("options", "")] if "options" in params else []
        # The lock wait plays the part SQLite's busy_timeout does.
        options.append(f"-c lock_timeout={busy_timeout_ms}")
        if schema:
            options.append(f"-c search_path={schema}")
        try:
            port = parts.port
        except ValueError as exc:
            raise DatabaseUrlError(f"bad port in PostgreSQL URL {redact_url(url)!r}") from exc
        connect: dict[str, Any] = {
            "host": parts.hostname or None,
            "port": port,
            "user": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "options": " ".join(o for o in options if o),
            "connect_timeout": params.pop("connect_timeout", 10),
            **params,
        }
        db = PostgresPool(dbname, **{k: v for k, v in connect.items() if v is not None})
        return cls(db, url, schema=schema)

    # --- state -------------------------------------------------------------------------------------

    @property
    def is_postgres(self) -> bool:
        return isinstance(self.db, pw.PostgresqlDatabase)

    @property
    def is_sqlite(self) -> bool:
        return isinstance(self.db, pw.SqliteDatabase)

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs and error messages."""
        return redact_url(self.url)

    def bind(self) -> None:
        """Make every model use this database (the last Database bound wins; see the module docstring)."""
        self.db.bind(ALL_MODELS, bind_refs=False, bind_backrefs=False)

    def connect(self) -> None:
        """Bind the models and open this thread's connection (other threads connect on first use)."""
        self.bind()
        try:
            self.db.connect(reuse_if_open=True)
            self._ensure_schema()
        except pw.OperationalError as exc:
            message = redact_text(str(exc), url_secrets(self.url))
            raise DatabaseConnectError(f"cannot open the database {self.display_url}: {message}") from None

    def close(self) -> None:
        """End this thread's use of its connection (a no-op when none is open); the pool keeps it."""
        if not self.db.is_closed():
            self.db.close()

    def close_all(self) -> None:
        """Close every connection of the pool, at shutdown: SQLite checkpoints its WAL on the last one."""
        if self.data_version is not None:
            self.data_version.close()
        close_all(self.db)

    def atomic(self) -> Any:
        """A transaction (a savepoint when nested) as a context manager or decorator."""
        return self.db.atomic()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Database]:
        """Open for the duration of a ``with`` block, then close this thread's connection."""
        self.connect()
        try:
            yield self
        finally:
            self.close()

    def _ensure_schema(self) -> None:
        if not self.schema or self._schema_ready:
            return
        with self._lock:
            if not self._schema_ready:
                self.db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')  # type: ignore[no-untyped-call]
                self._schema_ready = True

    # --- migrations --------------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the pending migrations; return the schema version now in place."""
        self.connect()
        return migrations.migrate(self)

    def schema_version(self) -> int:
        """The version recorded in ``schema_version`` (0 for a database never migrated)."""
        self.connect()
        return migrations.current_version(self)


class DatabaseConnectError(RuntimeError):
    """The database could not be opened (server down, bad credentials, unwritable file)."""
