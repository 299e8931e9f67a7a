"""The real agent CLIs, as npm ships them (the pinned versions), run without credentials in local mode.

A new user who has not signed in must get, within seconds, a ``failed`` attempt whose log says why in words
a person understands — never ``completed``, never a raw npm error alone. The CLIs are installed once into
a cache directory (``ANYON_TEST_AGENT_CACHE``, default ``/var/cache/anyon-test/agents``) with
``npm install --prefix``; outside CI the test is skipped, saying why, when npm or its registry is not there.

The agents run with an empty agent home (no logins) and every proxy variable pointing at a closed loopback
port, so whatever they send goes nowhere but 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anyon.services.agents.launchers import AGENT_CLIS
from tests.conftest import IN_CI, make_config
from tests.live_server import LiveServer, live_server
from tests.test_output_agents import entries, run

#: executor → the CLI installed for it (the ones the npm registry serves; Cursor's CLI is not on npm).
#: Codex, Gemini and Qwen Code speak JSON-RPC/ACP over stdin and are driven by their protocol clients.
REAL = {"CLAUDE_CODE": "CLAUDE_CODE", "AMP": "AMP", "OPENCODE": "OPENCODE", "COPILOT": "COPILOT"}
CACHE = Path(os.environ.get("ANYON_TEST_AGENT_CACHE", "/var/cache/anyon-test/agents"))
CLOSED = "http://127.0.0.1:9"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but the real agent CLIs cannot be installed: {reason}")
    pytest.skip(reason)


def install_clis() -> Path:
    """``<cache>/<versions>/node_modules/.bin``, installing the pinned packages there when missing."""
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not installed")
    specs = sorted(f"{AGENT_CLIS[k].package}@{AGENT_CLIS[k].version}" for k in REAL.values())
    prefix = CACHE / hashlib.sha256(" ".join(specs).encode()).hexdigest()[:16]
    bin_dir = prefix / "node_modules" / ".bin"
    wanted = [AGENT_CLIS[k].program for k in REAL.values()]
    if all((bin_dir / name).exists() for name in wanted):
        return bin_dir
    try:
        prefix.mkdir(parents=True, exist_ok=True)
    except OSError:
        prefix = Path("/tmp/anyon-test-agents") / prefix.name
        prefix.mkdir(parents=True, exist_ok=True)
        bin_dir = prefix / "node_modules" / ".bin"
    cmd = [str(npm), "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error"]
    cmd += specs
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        _unavailable("npm install of the agent CLIs took longer than 10 minutes")
    if done.returncode != 0 or not all((bin_dir / name).exists() for name in wanted):
        _unavailable(f"npm install of {' '.join(specs)} failed: {done.stderr[-800:]}")
    return bin_dir


@pytest.fixture(scope="module")
def cli_bin() -> Path:
    return install_clis()


@pytest.fixture
def server(tmp_path: Path, cli_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("PATH", f"{cli_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, CLOSED)
    for name in ("NO_PROXY", "no_proxy"):  # the test's own client talks to the server directly
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    home = tmp_path / "agent-home"
    config = make_config(
        tmp_path,
        executions={"stop_escalation_seconds": 0.5, "start_timeout_seconds": 60.0},
        agents={"home": str(home)},
    )
    with live_server(config) as live:
        yield live


@pytest.mark.parametrize("executor", list(REAL))
def test_a_real_cli_without_credentials_fails_within_seconds_saying_why(
    server: LiveServer, tmp_path: Path, cli_bin: Path, executor: str
) -> None:
    if executor == "CLAUDE_CODE" and os.geteuid() == 0:
        # as root Claude Code refuses --dangerously-skip-permissions before anything else; run it without
        options = {"CLAUDE_CODE": {"dangerously_skip_permissions": False}}
        server.ok("PUT", "/api/profiles", json={"executors": {"CLAUDE_CODE": {"DEFAULT": options}}})
    started = time.monotonic()
    process = run(server, tmp_path, executor, "Add a README")
    took = time.monotonic() - started
    assert process["status"] == "failed", process
    assert took < 45, f"{executor} took {took:.1f} s to fail"
    command: dict[str, Any] = process["executor_action"]["command"]
    assert command["launcher"] == "installed" and command["argv"][0].startswith(str(cli_bin))
    log = entries(server, process["id"])
    errors = [e for e in log if e["entry_type"]["type"] == "error_message"]
    assert errors, log
    said = " ".join(e["content"] for e in errors)
    assert "not signed in" in said or "cannot reach its model service" in said, said
    print(f"{executor}: failed in {took:.1f} s: {errors[0]['content']}")
