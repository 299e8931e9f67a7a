"""Shared fixtures: a real config rooted in a temporary directory (``make_config``, from the harness the
benchmarks use too), real services, no mocks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from anyon.config.model import AnyonConfig
from anyon.harness.config import make_config

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture
def config(tmp_path: Path) -> AnyonConfig:
    return make_config(tmp_path)


def postgres_url() -> str | None:
    """The PostgreSQL the DB tests use; under CI its absence is a failure, not a skip."""
    url = os.environ.get("ANYON_TEST_POSTGRES_URL")
    if not url and IN_CI:
        pytest.fail("CI=true but ANYON_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI")
    return url


def require_docker() -> None:
    """Skip (outside CI, saying why) or fail (in CI) when no Docker Engine answers."""
    import docker  # local import: local-mode tests never need the docker package

    try:
        docker.from_env(timeout=5).ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI=true but no Docker Engine answers: {exc}")
        pytest.skip(f"no Docker Engine answers ({exc}); run scripts/test.sh as root to start one")


def _drop_pg_schema(url: str, schema: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A fresh database URL: a SQLite file, or a throw-away schema in the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'anyon.db'}"
        return
    base = postgres_url()
    if not base:
        pytest.skip("ANYON_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)")
    import uuid

    schema = f"t_{uuid.uuid4().hex[:16]}"
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}schema={schema}"
    _drop_pg_schema(base, schema)
