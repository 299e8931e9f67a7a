"""Versioned schema migrations with a recorded version.

Each migration is frozen SQL (written once for both dialects through a small type map), never
``create_tables`` from the current models: a model that grows a column in version N must not make
migration 1 create it too. ``tests/test_db_migrations.py`` checks that the migrated schema and the models
agree, so a model change without a migration fails the suite.

``schema_version(version PRIMARY KEY, applied_at)`` gets one row per applied migration. ``migrate`` takes a
database-wide lock (SQLite: an IMMEDIATE transaction; PostgreSQL: a transaction-scoped advisory lock), so
two servers starting at once apply each migration exactly once. A database whose version is newer than
this code knows is refused rather than guessed at.

The functions take any :class:`SchemaTarget`; :class:`~anyon.services.db.database.Database` is one, and
it calls them from ``migrate()`` and ``schema_version()``, so this module does not import it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import peewee as pw

from anyon.services.db.columns import (
    DRAFT_TYPES,
    LOG_KINDS,
    MERGE_TYPES,
    PR_STATUSES,
    PROCESS_STATUSES,
    RUN_REASONS,
    TASK_STATUSES,
)

_ADVISORY_LOCK_KEY = 0x616E796F6E  # "anyon"


class SchemaTarget(Protocol):
    """What migrating needs of an open database: its peewee handle, its engine, a URL fit for messages."""

    @property
    def db(self) -> pw.Database: ...

    @property
    def is_postgres(self) -> bool: ...

    @property
    def display_url(self) -> str: ...


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer anyon than this one."""


class MigrationError(RuntimeError):
    """A migration failed; the database is left at the previous version (each runs in a transaction)."""


@dataclass(frozen=True)
class Dialect:
    """Type spellings of one database engine, substituted into the frozen DDL."""

    name: str
    uuid: str
    ts: str
    now: str
    bool: str
    bigint: str
    blob: str
    serial_pk: str
    no_space: Callable[[str], str]


SQLITE = Dialect(
    name="sqlite",
    uuid="TEXT",
    ts="TEXT",
    # Same fixed-width text the models write: YYYY-MM-DD HH:MM:SS.ffffff (UTC).
    now="(strftime('%Y-%m-%d %H:%M:%f000', 'now'))",
    bool="INTEGER",
    bigint="INTEGER",
    blob="BLOB",
    serial_pk="INTEGER NOT NULL PRIMARY KEY",
    no_space=lambda col: f"instr({col}, ' ') = 0",
)
POSTGRES = Dialect(
    name="postgresql",
    uuid="UUID",
    ts="TIMESTAMPTZ",
    now="now()",
    bool="BOOLEAN",
    bigint="BIGINT",
    blob="BYTEA",
    serial_pk="BIGSERIAL PRIMARY KEY",
    no_space=lambda col: f"strpos({col}, ' ') = 0",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"CHECK ({column} IN ({', '.join(repr(v) for v in values)}))"


def _v1(d: Dialect) -> list[str]:
    """Every table of spec §3 (plus chunked logs, spec §8)."""
    u, ts, now, b, big = d.uuid, d.ts, d.now, d.bool, d.bigint
    stamps = f"created_at {ts} NOT NULL DEFAULT {now}, updated_at {ts} NOT NULL DEFAULT {now}"
    # SQLite resolves foreign keys when they are used, so tasks can name task_attempts before it exists;
    # PostgreSQL gets that constraint with ALTER TABLE once both tables are there.
    parent_fk = (
        f"parent_task_attempt {u} REFERENCES task_attempts (id) ON DELETE SET NULL"
        if d is SQLITE
        else f"parent_task_attempt {u}"
    )
    stmts = [
        f"""CREATE TABLE projects (
            id {u} NOT NULL PRIMARY KEY, user_id TEXT, name TEXT NOT NULL, git_repo_path TEXT NOT NULL,
            setup_script TEXT DEFAULT '', dev_script TEXT DEFAULT '', cleanup_script TEXT DEFAULT '',
            copy_files TEXT, {stamps})""",
        # NULL user_ids would not collide in a plain UNIQUE(user_id, git_repo_path): fold them to ''.
        "CREATE UNIQUE INDEX projects_user_path ON projects (COALESCE(user_id, ''), git_repo_path)",
        f"""CREATE TABLE tasks (
            id {u} NOT NULL PRIMARY KEY,
            project_id {u} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            title TEXT NOT NULL, description TEXT,
            status TEXT NOT NULL DEFAULT 'todo' {_in("status", TASK_STATUSES)},
            user_id TEXT, {stamps}, {parent_fk})""",
        "CREATE INDEX tasks_project_created ON tasks (project_id, created_at DESC)",
        "CREATE INDEX tasks_project_user ON tasks (project_id, user_id)",
        "CREATE INDEX tasks_parent_task_attempt ON tasks (parent_task_attempt)",
        "CREATE INDEX tasks_user_id ON tasks (user_id)",
        f"""CREATE TABLE task_attempts (
            id {u} NOT NULL PRIMARY KEY,
            task_id {u} NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            executor TEXT, target_branch TEXT NOT NULL DEFAULT 'main',
            worktree_deleted {b} NOT NULL DEFAULT FALSE, setup_completed_at {ts}, container_ref TEXT,
            branch TEXT NOT NULL DEFAULT 'main', user_id TEXT, {stamps})""",
        "CREATE INDEX task_attempts_task_created ON task_attempts (task_id, created_at DESC)",
        "CREATE INDEX task_attempts_created ON task_attempts (created_at DESC)",
        "CREATE INDEX task_attempts_user_id ON task_attempts (user_id)",
        f"""CREATE TABLE execution_processes (
            id {u} NOT NULL PRIMARY KEY,
            task_attempt_id {u} NOT NULL REFERENCES task_attempts (id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'running' {_in("status", PROCESS_STATUSES)},
            exit_code {big}, started_at {ts} NOT NULL DEFAULT {now}, completed_at {ts},
            run_reason TEXT NOT NULL DEFAULT 'setupscript' {_in("run_reason", RUN_REASONS)},
            executor_action TEXT NOT NULL DEFAULT '', executor_action_type TEXT,
            dropped {b} NOT NULL DEFAULT FALSE, after_head_commit TEXT, before_head_commit TEXT,
            user_id TEXT, {stamps})""",
        "CREATE INDEX execution_processes_status ON execution_processes (status)",
        "CREATE INDEX execution_processes_run_reason ON execution_processes (run_reason)",
        "CREATE INDEX execution_processes_attempt_created"
        " ON execution_processes (task_attempt_id, created_at)",
        "CREATE INDEX execution_processes_attempt_type_created"
        " ON execution_processes (task_attempt_id, executor_action_type, created_at DESC)",
        "CREATE INDEX execution_processes_user_id ON execution_processes (user_id)",
        f"""CREATE TABLE execution_process_logs (
            id {d.serial_pk},
            execution_id {u} NOT NULL REFERENCES execution_processes (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL, kind TEXT NOT NULL {_in("kind", LOG_KINDS)},
            content TEXT NOT NULL, byte_size INTEGER NOT NULL,
            inserted_at {ts} NOT NULL DEFAULT {now})""",
        "CREATE UNIQUE INDEX execution_process_logs_execution_seq"
        " ON execution_process_logs (execution_id, seq)",
        "CREATE INDEX execution_process_logs_inserted_at ON execution_process_logs (inserted_at)",
        f"""CREATE TABLE executor_sessions (
            id {u} NOT NULL PRIMARY KEY,
            task_attempt_id {u} NOT NULL REFERENCES task_attempts (id) ON DELETE CASCADE,
            execution_process_id {u} NOT NULL REFERENCES execution_processes (id) ON DELETE CASCADE,
            session_id TEXT, prompt TEXT, summary TEXT, user_id TEXT, {stamps})""",
        "CREATE INDEX executor_sessions_execution_process_id ON executor_sessions (execution_process_id)",
        "CREATE INDEX executor_sessions_session_id ON executor_sessions (session_id)",
        "CREATE INDEX executor_sessions_task_attempt_id ON executor_sessions (task_attempt_id)",
        "CREATE INDEX executor_sessions_user_id ON executor_sessions (user_id)",
        f"""CREATE TABLE merges (
            id {u} NOT NULL PRIMARY KEY,
            task_attempt_id {u} NOT NULL REFERENCES task_attempts (id) ON DELETE CASCADE,
            merge_type TEXT NOT NULL {_in("merge_type", MERGE_TYPES)},
            merge_commit TEXT, pr_number {big}, pr_url TEXT,
            pr_status TEXT CHECK (pr_status IS NULL OR {_in("pr_status", PR_STATUSES)[7:-1]}),
            pr_merged_at {ts}, pr_merge_commit_sha TEXT,
            created_at {ts} NOT NULL DEFAULT {now}, target_branch_name TEXT NOT NULL, user_id TEXT,
            CHECK ((merge_type = 'direct' AND merge_commit IS NOT NULL AND pr_number IS NULL
                    AND pr_url IS NULL AND pr_status IS NULL)
                OR (merge_type = 'pr' AND merge_commit IS NULL AND pr_number IS NOT NULL
                    AND pr_url IS NOT NULL AND pr_status IS NOT NULL)))""",
        "CREATE INDEX merges_attempt_created ON merges (task_attempt_id, created_at DESC)",
        "CREATE INDEX merges_open_pr ON merges (task_attempt_id, pr_status)"
        " WHERE merge_type = 'pr' AND pr_status = 'open'",
        f"""CREATE TABLE drafts (
            id {u} NOT NULL PRIMARY KEY,
            task_attempt_id {u} NOT NULL REFERENCES task_attempts (id) ON DELETE CASCADE,
            draft_type TEXT NOT NULL {_in("draft_type", DRAFT_TYPES)},
            retry_process_id {u} REFERENCES execution_processes (id) ON DELETE CASCADE,
            prompt TEXT NOT NULL DEFAULT '', queued {b} NOT NULL DEFAULT FALSE,
            sending {b} NOT NULL DEFAULT FALSE, version {big} NOT NULL DEFAULT 0, variant TEXT,
            image_ids TEXT, user_id TEXT, {stamps})""",
        "CREATE UNIQUE INDEX drafts_attempt_type ON drafts (task_attempt_id, draft_type)",
        "CREATE INDEX drafts_retry_process_id ON drafts (retry_process_id)",
        f"""CREATE TABLE images (
            id {u} NOT NULL PRIMARY KEY, file_path TEXT NOT NULL, original_name TEXT NOT NULL,
            mime_type TEXT, size_bytes {big} NOT NULL, hash TEXT NOT NULL UNIQUE, user_id TEXT, {stamps})""",
        f"""CREATE TABLE task_images (
            id {u} NOT NULL PRIMARY KEY,
            task_id {u} NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            image_id {u} NOT NULL REFERENCES images (id) ON DELETE CASCADE,
            created_at {ts} NOT NULL DEFAULT {now}, UNIQUE (task_id, image_id))""",
        "CREATE INDEX task_images_image_id ON task_images (image_id)",
        f"""CREATE TABLE tags (
            id {u} NOT NULL PRIMARY KEY,
            tag_name TEXT NOT NULL CHECK ({d.no_space("tag_name")}),
            content TEXT NOT NULL CHECK (content <> ''), user_id TEXT, {stamps})""",
        "CREATE INDEX tags_user_id ON tags (user_id)",
        f"""CREATE TABLE secrets (
            id {u} NOT NULL PRIMARY KEY, user_id TEXT NOT NULL, provider TEXT NOT NULL, name TEXT NOT NULL,
            key_version INTEGER NOT NULL DEFAULT 1 CHECK (key_version = 1), secret_blob {d.blob} NOT NULL,
            {stamps}, UNIQUE (user_id, provider, name))""",
    ]
    if d is POSTGRES:
        stmts.append(
            "ALTER TABLE tasks ADD CONSTRAINT tasks_parent_task_attempt_fkey"
            " FOREIGN KEY (parent_task_attempt) REFERENCES task_attempts (id) ON DELETE SET NULL"
        )
    return stmts


def _v5(d: Dialect) -> list[str]:
    """Accounts of a cloud server shared by a team: users, their hashed API tokens, project members.

    Depends on version 1 only (``projects``, ``drafts``); owners are the existing ``user_id`` columns.
    """
    u, ts, now, b = d.uuid, d.ts, d.now, d.bool
    return [
        f"""CREATE TABLE users (
            id TEXT NOT NULL PRIMARY KEY, login TEXT NOT NULL UNIQUE,
            is_admin {b} NOT NULL DEFAULT FALSE, disabled_at {ts},
            created_at {ts} NOT NULL DEFAULT {now}, updated_at {ts} NOT NULL DEFAULT {now})""",
        f"""CREATE TABLE user_tokens (
            id {u} NOT NULL PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            name TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE, revoked_at {ts},
            created_at {ts} NOT NULL DEFAULT {now})""",
        "CREATE INDEX user_tokens_user_id ON user_tokens (user_id)",
        f"""CREATE TABLE project_members (
            id {u} NOT NULL PRIMARY KEY,
            project_id {u} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created_at {ts} NOT NULL DEFAULT {now})""",
        "CREATE UNIQUE INDEX project_members_project_user ON project_members (project_id, user_id)",
        "CREATE INDEX project_members_user_id ON project_members (user_id)",
        "CREATE INDEX projects_user_id ON projects (user_id)",
        # drafts belong to the account that writes them: one of each type per attempt *and account*
        "DROP INDEX drafts_attempt_type",
        "CREATE UNIQUE INDEX drafts_attempt_type"
        " ON drafts (task_attempt_id, draft_type, COALESCE(user_id, ''))",
    ]


# version -> (description, DDL builder). Append new versions; never edit a released one.
MIGRATIONS: dict[int, tuple[str, Callable[[Dialect], list[str]]]] = {
    1: ("create every table of the spec §3 schema, with chunked execution logs", _v1),
    5: ("user accounts, their API tokens and project members (cloud mode)", _v5),
}
LATEST_VERSION = max(MIGRATIONS)


def _sql(db: pw.Database, sql: str, params: tuple[Any, ...] | None = None) -> Any:
    """``execute_sql`` with a typed signature (peewee's own is untyped)."""
    return db.execute_sql(sql, params)  # type: ignore[no-untyped-call]


def dialect_of(database: SchemaTarget) -> Dialect:
    return POSTGRES if database.is_postgres else SQLITE


def _ensure_version_table(database: SchemaTarget) -> None:
    ts = dialect_of(database).ts
    _sql(
        database.db,
        "CREATE TABLE IF NOT EXISTS schema_version"
        f" (version INTEGER NOT NULL PRIMARY KEY, applied_at {ts} NOT NULL)",
    )


def _read_version(database: SchemaTarget) -> int:
    row = _sql(database.db, "SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def current_version(database: SchemaTarget) -> int:
    """The recorded schema version; 0 when the database has never been migrated."""
    if "schema_version" not in database.db.get_tables():
        return 0
    return _read_version(database)


def _refuse_newer(database: SchemaTarget, version: int) -> None:
    if version > LATEST_VERSION:
        raise SchemaTooNewError(
            f"the database {database.display_url} has schema version {version}, but this anyon knows "
            f"versions up to {LATEST_VERSION}: upgrade anyon, or point it at another database"
        )


def migrate(database: SchemaTarget) -> int:
    """Apply the pending migrations in order, each in its own transaction; return the final version."""
    db = database.db
    dialect = dialect_of(database)
    # Fast path: nothing to do needs no write lock (servers restart far more often than they upgrade).
    version = current_version(database)
    _refuse_newer(database, version)
    if version == LATEST_VERSION:
        return version
    for target in sorted(MIGRATIONS):
        with db.atomic():  # IMMEDIATE on SQLite: holds the write lock for the whole step
            if dialect is POSTGRES:
                _sql(db, "SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
            _ensure_version_table(database)
            version = _read_version(database)
            _refuse_newer(database, version)
            if target <= version:
                continue
            description, build = MIGRATIONS[target]
            try:
                for statement in build(dialect):
                    _sql(db, statement)
            except pw.DatabaseError as exc:
                raise MigrationError(f"migration {target} ({description}) failed: {exc}") from exc
            applied_at: object = dt.datetime.now(dt.UTC)
            if dialect is SQLITE:
                applied_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            param = "?" if dialect is SQLITE else "%s"
            _sql(
                db,
                f"INSERT INTO schema_version (version, applied_at) VALUES ({param}, {param})",
                (target, applied_at),
            )
    return _read_version(database)
