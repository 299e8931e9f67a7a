"""Database passwords never printed: the redaction helper on many URL shapes, then the real commands
(`config show`, `config validate`, `doctor`, `migrate`, `serve` and its log) run as subprocesses with a
password in ``database.url``, their whole output searched for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anyon.config.redact import MASK, redact_text, redact_url, url_secrets

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Xy9-s3cr3t"

# (URL, the password(s) in it, what the redacted URL must still show)
SHAPES = [
    (f"postgresql://user:{PASSWORD}@db.example:5432/anyon", [PASSWORD], "user:***@db.example:5432/anyon"),
    (f"postgres://user:pa@ss{PASSWORD}@host/db", [f"pa@ss{PASSWORD}"], "user:***@host/db"),
    (f"postgresql://user:pa/ss{PASSWORD}@host:5432/db", [f"pa/ss{PASSWORD}"], "user:***@host:5432/db"),
    (f"postgresql://user:a:b:{PASSWORD}@host/db", [f"a:b:{PASSWORD}"], "user:***@host/db"),
    (f"postgresql://user:a?b{PASSWORD}@host/db", [f"a?b{PASSWORD}"], "user:***@host/db"),
    (f"postgresql://user:a#b{PASSWORD}@host/db", [f"a#b{PASSWORD}"], "user:***@host/db"),
    (f"postgresql://:{PASSWORD}@host/db", [PASSWORD], "://:***@host/db"),
    (f"postgresql://user:{PASSWORD}%40x@host/db", [f"{PASSWORD}@x"], "user:***@host/db"),
    (f"postgresql://host/db?password={PASSWORD}&sslmode=require", [PASSWORD], "sslmode=require"),
    (f"postgresql://u@host/db?sslmode=require&password=a&b{PASSWORD}", [f"a&b{PASSWORD}"], "u@host/db"),
    (f"postgresql://u@host/db?sslpassword={PASSWORD}", [PASSWORD], "u@host/db?sslpassword=***"),
    (f"postgresql://u:{PASSWORD}@h1:5432,h2:5433/db", [PASSWORD], "u:***@h1:5432,h2:5433/db"),
    (f"postgresql://u:{PASSWORD}@[::1]:5432/db?password={PASSWORD}", [PASSWORD], "u:***@[::1]:5432/db"),
    (f"host=h port=5432 password={PASSWORD} dbname=x", [PASSWORD], "dbname=x"),
    (f"host=h password='a b {PASSWORD}' dbname=x", [f"a b {PASSWORD}"], "dbname=x"),
]


@pytest.mark.parametrize(("url", "secrets", "kept"), SHAPES)
def test_redact_url_shapes(url: str, secrets: list[str], kept: str) -> None:
    shown = redact_url(url)
    for secret in secrets:
        assert secret not in shown
    assert PASSWORD not in shown and MASK in shown and kept in shown
    # the literal secrets are found too, so free text quoting them is cleaned
    assert PASSWORD not in redact_text(f"error: {secrets[0]!r} rejected for {url}", url_secrets(url))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@host/db",
        "postgresql://host:5432/db?sslmode=require&application_name=a@b",
        "sqlite:////var/lib/anyon/anyon.db",
        "sqlite:///tmp/a@b.db",
    ],
)
def test_urls_without_a_password_are_unchanged(url: str) -> None:
    assert redact_url(url) == url and url_secrets(url) == ()


def test_redact_text_finds_urls_in_free_text() -> None:
    text = (
        f"could not connect to postgres://u:{PASSWORD}@h/db (timeout); retry with 'mysql://a:{PASSWORD}@x/'"
    )
    assert PASSWORD not in redact_text(text)
    assert "postgres://u:***@h/db" in redact_text(text)
    assert redact_text("max_tokens=4096 passed=3") == "max_tokens=4096 passed=3"


# --- the real commands ----------------------------------------------------------------------------


def _environment(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ANYON_") and k not in ("HOST", "PORT", "BACKEND_PORT", "CREDENTIALS_DIRECTORY")
    }
    settings = tmp_path / "settings.toml"
    settings.write_text("")
    env.update(
        HOME=str(tmp_path / "home"),
        ANYON_SETTINGS_FILE=str(settings),
        ANYON_BASE_DIR=str(tmp_path / "base"),
        ANYON_TEMP_DIR=str(tmp_path / "tmp"),
        ANYON_DATABASE__URL=url,
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anyon", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


# port 1 on loopback refuses at once: every command that connects fails with the driver's message
BAD_PORT = "127.0.0.1:1"
END_TO_END = [
    f"postgresql://anyon:{PASSWORD}@{BAD_PORT}/anyon",
    f"postgresql://anyon:p@ss/{PASSWORD}:x@{BAD_PORT}/anyon",
    f"postgresql://anyon@{BAD_PORT}/anyon?password={PASSWORD}",
    f"postgresql://:{PASSWORD}@{BAD_PORT}/anyon",
]


@pytest.mark.parametrize("url", END_TO_END)
def test_commands_never_print_the_password(tmp_path: Path, url: str) -> None:
    env = _environment(tmp_path, url)
    outputs: dict[str, str] = {}
    for args in (
        ("config", "show"),
        ("config", "show", "--origin"),
        ("config", "show", "--format", "json"),
        ("config", "validate"),
        ("config", "validate", "--format", "json"),
        ("doctor",),
        ("doctor", "--format", "json"),
        ("migrate",),
    ):
        done = _run(env, *args)
        outputs[" ".join(args)] = done.stdout + done.stderr
    for command, output in outputs.items():
        assert PASSWORD not in output, (command, output)
    assert MASK in outputs["config show"]
    assert "anyon migrate:" in outputs["migrate"]  # it failed and said why
    assert "does not answer" in outputs["doctor"]


def test_invalid_database_url_is_reported_without_its_password(tmp_path: Path) -> None:
    env = _environment(tmp_path, f"mysql://root:{PASSWORD}@127.0.0.1/anyon")
    for args in (
        ("config", "validate"),
        ("config", "validate", "--format", "json"),
        ("doctor",),
        ("migrate",),
    ):
        done = _run(env, *args)
        assert done.returncode != 0
        assert "database.url" in done.stdout + done.stderr
        assert PASSWORD not in done.stdout + done.stderr, args


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_serve_start_up_failure_logs_no_password(tmp_path: Path, log_format: str) -> None:
    log_file = tmp_path / "logs" / "server.log"
    url = f'postgresql://anyon:p@ss/{PASSWORD}"\\@{BAD_PORT}/anyon'
    env = _environment(tmp_path, url, ANYON_LOG_FILE=str(log_file), ANYON_LOGGING__FORMAT=log_format)
    done = _run(env, "serve", "--port", "0")
    assert done.returncode == 1
    logged = log_file.read_text()
    assert "start-up failed" in logged and "start-up failed" in done.stderr
    for text in (logged, done.stdout, done.stderr):
        assert PASSWORD not in text and "p@ss" not in text
    if log_format == "json":
        assert all(json.loads(line) for line in logged.splitlines())
