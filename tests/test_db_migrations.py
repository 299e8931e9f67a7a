"""Opening databases, versioned migrations, and agreement between the migrated schema and the models."""

from __future__ import annotations

import threading
from pathlib import Path

import peewee as pw
import pytest
import test_db_support

from anyon.config.redact import redact_url
from anyon.services.db import Database, DatabaseConnectError, DatabaseUrlError
from anyon.services.db import migrations as mig
from anyon.services.db.models import ALL_MODELS, Task

# fixtures shared by every DB test module (SQLite and PostgreSQL)
database = test_db_support.database
migrated = test_db_support.migrated


def test_migrate_is_versioned_and_idempotent(database: Database) -> None:
    assert database.schema_version() == 0
    assert database.migrate() == mig.LATEST_VERSION
    assert database.schema_version() == mig.LATEST_VERSION
    tables_before = sorted(database.db.get_tables())
    assert database.migrate() == mig.LATEST_VERSION
    assert sorted(database.db.get_tables()) == tables_before
    rows = database.db.execute_sql(
        "SELECT version, applied_at FROM schema_version ORDER BY version"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(mig.MIGRATIONS)  # versions may have gaps between branches
    assert all(r[1] is not None for r in rows)


def test_every_spec_table_exists(migrated: Database) -> None:
    expected = {
        "projects", "tasks", "task_attempts", "execution_processes", "execution_process_logs",
        "executor_sessions", "merges", "drafts", "images", "task_images", "tags", "secrets", "schema_version",
        "users", "user_tokens", "project_members",
    }  # fmt: skip
    assert set(migrated.db.get_tables()) == expected


def test_migrated_schema_matches_the_models(migrated: Database) -> None:
    """A model column added without a migration (or the reverse) fails here."""
    for model in ALL_MODELS:
        table = model._meta.table_name
        columns = {c.name: c for c in migrated.db.get_columns(table)}
        fields = {f.column_name: f for f in model._meta.sorted_fields}
        assert set(columns) == set(fields), table
        for name, field in fields.items():
            assert columns[name].null == field.null, f"{table}.{name} nullability"
        assert {pk for pk in migrated.db.get_primary_keys(table)} == {model._meta.primary_key.column_name}


def test_spec_indexes_exist(migrated: Database) -> None:
    names = {i.name for t in migrated.db.get_tables() for i in migrated.db.get_indexes(t)}
    for index in (
        "projects_user_path",
        "tasks_project_created",
        "task_attempts_task_created",
        "execution_processes_attempt_created",
        "execution_processes_attempt_type_created",
        "execution_process_logs_execution_seq",
        "execution_process_logs_inserted_at",
        "merges_open_pr",
        "drafts_attempt_type",
    ):
        assert index in names


def test_newer_database_is_refused(migrated: Database) -> None:
    newer = mig.LATEST_VERSION + 1
    migrated.db.execute_sql(
        f"INSERT INTO schema_version (version, applied_at) VALUES ({newer}, {mig.dialect_of(migrated).now})"
    )
    with pytest.raises(mig.SchemaTooNewError) as info:
        migrated.migrate()
    assert f"schema version {newer}" in str(info.value)
    assert f"up to {mig.LATEST_VERSION}" in str(info.value)
    assert migrated.schema_version() == newer


def test_failed_migration_rolls_back_and_keeps_the_version(
    migrated: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = mig.LATEST_VERSION + 1
    steps = {
        **mig.MIGRATIONS,
        broken: ("broken", lambda d: ["CREATE TABLE half_done (x INTEGER)", "NOT SQL AT ALL"]),
    }
    monkeypatch.setattr(mig, "MIGRATIONS", steps)
    monkeypatch.setattr(mig, "LATEST_VERSION", broken)
    with pytest.raises(mig.MigrationError, match=f"migration {broken} \\(broken\\) failed"):
        migrated.migrate()
    assert migrated.schema_version() == broken - 1
    assert "half_done" not in migrated.db.get_tables()


def test_pending_migrations_apply_in_order(migrated: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    nxt = mig.LATEST_VERSION + 1
    steps = {**mig.MIGRATIONS, nxt: ("add a table", lambda d: ["CREATE TABLE extra_things (x INTEGER)"])}
    monkeypatch.setattr(mig, "MIGRATIONS", steps)
    monkeypatch.setattr(mig, "LATEST_VERSION", nxt)
    assert migrated.migrate() == nxt
    assert "extra_things" in migrated.db.get_tables()
    assert migrated.migrate() == nxt


def test_concurrent_migrate_applies_each_version_once(database: Database) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(database.migrate())
        except BaseException as exc:
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [mig.LATEST_VERSION] * 4
    count = database.db.execute_sql("SELECT COUNT(*) FROM schema_version").fetchone()[0]
    assert count == len(mig.MIGRATIONS)


def test_sqlite_pragmas_apply_to_every_thread(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path}/deep/er/anyon.db", busy_timeout_ms=1234)
    assert (tmp_path / "deep" / "er").is_dir()
    db.migrate()
    seen: dict[str, object] = {}

    def probe() -> None:
        for pragma in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
            seen[pragma] = db.db.execute_sql(f"PRAGMA {pragma}").fetchone()[0]
        db.close()

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert seen == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 1234, "synchronous": 1}
    db.close()


def test_sqlite_concurrent_writers_from_threads(tmp_path: Path) -> None:
    """The API's worker threads write at once: WAL + busy timeout + IMMEDIATE transactions cope."""
    from test_db_support import make_chain

    db = Database.from_url(f"sqlite:///{tmp_path}/anyon.db")
    db.migrate()
    project, *_ = make_chain()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(50):
                with db.atomic():
                    Task.create(project=project, title=f"t{i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Task.select().count() == 8 * 50 + 1
    db.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("mysql://root@127.0.0.1/x", "unsupported database URL scheme 'mysql'"),
        ("sqlite:///", "absolute file path"),
        ("sqlite://relative/path.db", "has a host part"),
        ("postgresql://u@127.0.0.1:5432/", "names no database"),
        ("postgresql://u@127.0.0.1:5432/db?schema=bad;name", "not a plain identifier"),
        ("postgresql://u@127.0.0.1:99999/db", "bad port"),
    ],
)
def test_bad_urls_get_clear_errors(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message):
        Database.from_url(url)


def test_sqlite_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUrlError, match="is a directory"):
        Database.from_url(f"sqlite:///{tmp_path}")


def test_unreachable_postgres_is_a_clear_error_without_password() -> None:
    db = Database.from_url("postgresql://someone:s3cret@127.0.0.1:1/nothing?connect_timeout=2")
    with pytest.raises(DatabaseConnectError) as info:
        db.connect()
    assert "cannot open the database postgresql://someone:***@127.0.0.1:1/nothing" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p@h:1/d") == "postgresql://u:***@h:1/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact_url("sqlite:///a/b.db") == "sqlite:///a/b.db"


def test_models_follow_the_last_connected_database(tmp_path: Path) -> None:
    one = Database.from_url(f"sqlite:///{tmp_path}/one.db")
    two = Database.from_url(f"sqlite:///{tmp_path}/two.db")
    for db in (one, two):
        db.migrate()
    one.connect()
    from test_db_support import make_chain

    make_chain()
    assert Task.select().count() == 1
    two.connect()
    assert Task._meta.database is two.db
    assert Task.select().count() == 0
    one.connect()
    assert Task.select().count() == 1
    for db in (one, two):
        db.close()
    assert isinstance(one.db, pw.SqliteDatabase)


def test_from_sqlite_file(tmp_path: Path) -> None:
    db = Database.from_sqlite_file(tmp_path / "a" / "anyon.db")
    assert db.url == f"sqlite://{tmp_path}/a/anyon.db"
    assert db.migrate() == mig.LATEST_VERSION
    assert (tmp_path / "a" / "anyon.db").is_file()
    db.close()
    with pytest.raises(DatabaseUrlError, match="must be absolute"):
        Database.from_sqlite_file("relative/anyon.db")
