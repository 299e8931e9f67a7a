"""Database fixtures shared by the DB and log-store tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL isolation: each test gets its own schema (``?schema=t_<random>`` in the URL, see
``Database.from_url``), dropped afterwards, so tests are independent and may run beside other suites using
the same database.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import postgres_url

from anyon.services.db import Database
from anyon.services.db.models import ExecutionProcess, Project, Task, TaskAttempt

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@contextlib.contextmanager
def open_database(backend: str, tmp_path: Path) -> Iterator[Database]:
    """A fresh, empty database of the given backend, removed afterwards."""
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/data/anyon.db"
    else:
        base = postgres_url()
        if not base:
            pytest.skip("ANYON_TEST_POSTGRES_URL is not set (required under CI=true)")
        schema = f"t_{uuid.uuid4().hex[:16]}"
        url = with_schema(base, schema)
    database = Database.from_url(url)
    database.connect()
    try:
        yield database
    finally:
        if schema is not None:
            database.connect()
            database.db.execute_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        database.close()


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database, not migrated."""
    with open_database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
def migrated(database: Database) -> Database:
    """A fresh database at the latest schema version."""
    database.migrate()
    return database


def make_chain(
    run_reason: str = "codingagent", status: str = "running"
) -> tuple[Project, Task, TaskAttempt, ExecutionProcess]:
    """A project with one task, one attempt and one process (the minimum most tests need)."""
    project = Project.create(name="demo", git_repo_path=f"/repos/{uuid.uuid4().hex}")
    task = Task.create(project=project, title="Do it")
    attempt = TaskAttempt.create(task=task, executor="CLAUDE_CODE", branch="vk/1234-do-it")
    process = ExecutionProcess.create(
        task_attempt=attempt,
        run_reason=run_reason,
        status=status,
        executor_action={
            "typ": {"type": "ScriptRequest", "script": "true", "language": "Bash", "context": "SetupScript"},
            "next_action": None,
        },
    )
    return project, task, attempt, process


def test_each_backend_gets_an_empty_database(database: Database) -> None:
    assert database.schema_version() == 0
    assert [t for t in database.db.get_tables() if t != "schema_version"] == []
