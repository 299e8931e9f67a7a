"""The machine itself: the configured directories, disk space, git and the database.

These apply in every mode; none of them needs Docker.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from urllib.parse import urlsplit

from anyon.checks.results import CheckResult, fail, ok, warn
from anyon.config.model import AnyonConfig

DISK_FAIL_BYTES = 1024**3
DISK_WARN_BYTES = 5 * 1024**3


def user_name(uid: int) -> str:
    """The login name of ``uid`` for messages (the number itself when no user has it)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def configured_directories(config: AnyonConfig) -> list[tuple[str, str]]:
    paths = config.paths
    found = [
        ("paths.base_dir", paths.base_dir),
        ("paths.data_dir", paths.data_dir),
        ("paths.worktree_dir", paths.worktree_dir),
        ("paths.workspace_dir", paths.workspace_dir),
        ("paths.temp_dir", paths.temp_dir),
    ]
    if paths.secrets_dir:
        found.append(("paths.secrets_dir", paths.secrets_dir))
    if paths.log_file:
        found.append(("paths.log_file", os.path.dirname(paths.log_file)))
    if not config.database.url:
        found.append(("database.file", os.path.dirname(config.database.file)))
    first_key: dict[str, str] = {}
    for key, path in found:
        first_key.setdefault(path, key)
    return [(key, path) for path, key in first_key.items()]


def check_directories(config: AnyonConfig, uid: int) -> list[CheckResult]:
    user = user_name(uid)
    results = []
    for key, path in configured_directories(config):
        name = f"directory {key}"
        if not os.path.exists(path):
            parent = path
            while not os.path.exists(parent):
                parent = os.path.dirname(parent)
            if os.access(parent, os.W_OK | os.X_OK):
                results.append(ok(name, f"{path} does not exist yet; it is created at start-up"))
            else:
                results.append(
                    fail(
                        name,
                        f"{path} does not exist and {parent} is not writable by {user}",
                        f"install -d -o {user} -m 0750 {path}",
                    )
                )
            continue
        if not os.path.isdir(path):
            results.append(fail(name, f"{path} is not a directory", f"remove it or change {key}"))
            continue
        owner = os.stat(path).st_uid
        if not os.access(path, os.W_OK | os.X_OK):
            results.append(fail(name, f"{path} is not writable by {user}", f"chown -R {user} {path}"))
        elif owner != uid and uid != 0:
            results.append(
                warn(
                    name,
                    f"{path} is owned by {user_name(owner)}, not by the service user {user}",
                    f"chown -R {user} {path}",
                )
            )
        else:
            results.append(ok(name, f"{path} is writable by {user}"))
    return results


def check_disk(config: AnyonConfig) -> list[CheckResult]:
    results = []
    seen_devices: set[int] = set()
    for key, path in (
        ("paths.data_dir", config.paths.data_dir),
        ("paths.worktree_dir", config.paths.worktree_dir),
    ):
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        device = os.stat(existing).st_dev
        if device in seen_devices:
            continue
        seen_devices.add(device)
        free = shutil.disk_usage(existing).free
        shown = f"{free / 1024**3:.1f} GiB free for {key} ({existing})"
        if free < DISK_FAIL_BYTES:
            results.append(
                fail("disk space", shown, "free space on that disk or grow it; worktrees need room")
            )
        elif free < DISK_WARN_BYTES:
            results.append(
                warn("disk space", shown, "less than 5 GiB left: attempts may fail on large repositories")
            )
        else:
            results.append(ok("disk space", shown))
    return results


def check_git() -> CheckResult:
    git = shutil.which("git")
    if git is None:
        return fail("git", "git is not on PATH", "apt-get install git")
    try:
        out = subprocess.run([git, "--version"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return fail("git", f"{git} --version failed: {exc}", "reinstall git")
    return ok("git", out.stdout.strip())


def check_database(config: AnyonConfig) -> CheckResult:
    url = config.database_url
    if url.startswith("sqlite"):
        return ok("database", f"SQLite file {config.database.file if not config.database.url else url}")
    from anyon.config.redact import redact_text, redact_url, url_secrets

    shown = redact_url(url)
    try:
        import psycopg2

        parts = urlsplit(url)
        dsn = url.split("?", 1)[0] if parts.query else url
        conn = psycopg2.connect(dsn, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("select version()")
                row = cur.fetchone()
        finally:
            conn.close()
    except Exception as exc:
        text = redact_text(str(exc), url_secrets(url)).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        return fail(
            "database", f"PostgreSQL at {shown} does not answer: {message}", "start it or fix database.url"
        )
    version = str(row[0]).split(",")[0] if row else "PostgreSQL"
    return ok("database", f"{version} at {shown}")
