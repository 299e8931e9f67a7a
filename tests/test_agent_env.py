"""What a host-run agent (local mode) sees of the server's environment: the allow-list, never the server's
token, settings or database credentials. Through the real server: the agent is a script that writes its
whole environment to a file."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anyon.config.model import ExecutionSettings
from anyon.config.redact import url_secrets
from anyon.services.runners.environment import agent_environment, without_server_secrets
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server

TOKEN = "tok-8c1d0e4f-do-not-leak"
DB_PASSWORD = "pg-Secret-77"

# what a server's environment may hold that no agent may see
SERVER_SECRETS = {
    "ANYON_API_TOKEN": TOKEN,
    "ANYON_DATABASE__URL": f"postgresql://anyon:{DB_PASSWORD}@127.0.0.1:1/anyon",
    "ANYON_SOMETHING_ELSE": "x",
    "CREDENTIALS_DIRECTORY": "/run/credentials/anyon.service",
    "PGPASSWORD": DB_PASSWORD,
    "PGUSER": "anyon",
    "DATABASE_URL": f"postgresql://anyon:{DB_PASSWORD}@127.0.0.1:1/anyon",
    "APP_DATABASE_URL": f"postgresql://anyon:{DB_PASSWORD}@127.0.0.1:1/app",
    "NOTIFY_SOCKET": "/run/systemd/notify",
}
# what a developer expects the agent to have
EXPECTED = {"ANTHROPIC_API_KEY": "sk-ant-test", "OPENAI_API_KEY": "sk-test", "LC_CTYPE": "C.UTF-8"}


def test_defaults_pass_a_developer_environment_and_nothing_of_the_server() -> None:
    environ = {
        **SERVER_SECRETS,
        **EXPECTED,
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "XDG_CONFIG_HOME": "/home/u/.config",
        "RANDOM_TOOL_SETTING": "1",
    }
    seen = agent_environment(environ, ExecutionSettings().host_env_allowlist)
    assert seen == {
        **EXPECTED,
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "XDG_CONFIG_HOME": "/home/u/.config",
    }


def test_never_passed_names_win_over_any_allow_list() -> None:
    environ = {**SERVER_SECRETS, "PATH": "/usr/bin"}
    assert agent_environment(environ, ["*"]) == {"PATH": "/usr/bin"}
    assert agent_environment(environ, list(SERVER_SECRETS)) == {}
    assert without_server_secrets(environ) == {"PATH": "/usr/bin"}


def test_a_variable_holding_the_database_password_is_dropped_under_any_name() -> None:
    secrets = url_secrets(f"postgresql://anyon:{DB_PASSWORD}@db/anyon")
    environ = {"MY_COPY": f"prefix{DB_PASSWORD}", "MY_OTHER": "fine", "PATH": "/usr/bin"}
    assert agent_environment(environ, ["MY_*", "PATH"], secrets=secrets) == {
        "MY_OTHER": "fine",
        "PATH": "/usr/bin",
    }
    # a short password cannot blank out the environment (PATH would contain "b")
    short = url_secrets("postgresql://anyon:b@db/anyon")
    assert agent_environment(environ, ["PATH"], secrets=short) == {"PATH": "/usr/bin"}


# --- through the real server ------------------------------------------------------------------------


ENV_AGENT = """\
import json, os, sys
sys.stdin.read()
with open({out!r}, "w") as fh:
    json.dump(dict(os.environ), fh)
print(json.dumps({{"type": "result", "subtype": "success", "is_error": False, "result": "done"}}))
"""


@pytest.fixture
def server_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SERVER_SECRETS, **EXPECTED, "UNLISTED_TOOL_VAR": "1", "MY_FLAG": "on"}.items():
        monkeypatch.setenv(name, value)


def _agent_env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    out = tmp_path / "agent-env.json"
    script = tmp_path / "env_agent.py"
    script.write_text(ENV_AGENT.format(out=str(out)))
    profiles = {
        "executors": {
            "CLAUDE_CODE": {
                "DEFAULT": {"CLAUDE_CODE": {"base_command_override": f"{sys.executable} {script}"}}
            }
        }
    }
    server.ok("PUT", "/api/profiles", json=profiles)
    project = server.ok(
        "POST",
        "/api/projects",
        json={"name": "envp", "git_repo_path": str(tmp_path / "envp"), "use_existing_repo": False},
    )
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "print env"})
    server.ok(
        "POST",
        "/api/task-attempts",
        json={
            "task_id": task["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        },
    )
    deadline = time.monotonic() + 30
    while not out.exists() or not out.read_text().endswith("}"):
        assert time.monotonic() < deadline, "the agent never ran"
        time.sleep(0.05)
    seen: dict[str, str] = json.loads(out.read_text())
    return seen


def _assert_no_server_secrets(seen: dict[str, Any]) -> None:
    for name in SERVER_SECRETS:
        assert name not in seen, name
    assert not [n for n in seen if n.startswith(("ANYON_", "PG"))]
    blob = json.dumps(seen)
    assert TOKEN not in blob and DB_PASSWORD not in blob


@pytest.fixture
def default_server(tmp_path: Path, server_environment: None) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path)) as live:
        yield live


def test_host_agent_sees_the_allow_list_and_no_server_secret(
    default_server: LiveServer, tmp_path: Path
) -> None:
    seen = _agent_env(default_server, tmp_path)
    _assert_no_server_secrets(seen)
    for name, value in EXPECTED.items():
        assert seen[name] == value
    assert "PATH" in seen and "HOME" in seen
    assert "UNLISTED_TOOL_VAR" not in seen and "MY_FLAG" not in seen


def test_a_wide_allow_list_still_hides_the_server_secrets(
    tmp_path: Path, server_environment: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a copy of the database URL (with its password, when the test database has one) under a listed name
    monkeypatch.setenv("MY_DB_COPY", database_url)
    allowlist = ["*", "ANYON_*", "PG*", "DATABASE_URL", "CREDENTIALS_DIRECTORY"]
    config = make_config(
        tmp_path, database={"url": database_url}, executions={"host_env_allowlist": allowlist}
    )
    with live_server(config) as live:
        seen = _agent_env(live, tmp_path)
    _assert_no_server_secrets(seen)
    assert seen["MY_FLAG"] == "on" and seen["UNLISTED_TOOL_VAR"] == "1"
    if [s for s in url_secrets(database_url) if len(s) >= 6]:
        assert "MY_DB_COPY" not in seen
