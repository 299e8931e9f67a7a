"""Login terminals on a cloud server shared by accounts, through a real uvicorn: one account cannot hold them
all and lock its colleagues out of signing in.

Each account may have ``agents.login_terminals_per_account`` (2 by default) open at once, below the
server-wide 4: alice's third is refused with a message naming her own limit and how to free one, bob can
still open his, alice can open again once she closes one, the server-wide cap still holds, and a refused
open never starts the login CLI.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from anyon.config import ConfigError, load_config
from anyon.config.fields import BOUNDS
from anyon.services.agents.agent_login import MAX_OPEN_SESSIONS
from anyon.services.composition.runners import instance_id
from tests.live_server import LiveServer, live_server
from tests.test_accounts import _settings_file, add_user, as_user
from tests.test_accounts_agent_homes import _team_config
from tests.test_agent_login import FAKE_LOGIN, _alive, read_until, session_id
from tests.test_auth import CANARY, bearer
from tests.test_executions_cloud import remove_instance_containers, require_test_image

PER_ACCOUNT = 2
OWN_LIMIT = f"this account already has {PER_ACCOUNT} login terminals open, its own limit"


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    require_test_image()
    config = _team_config(tmp_path)
    assert config.agents.login_terminals_per_account == PER_ACCOUNT  # the default
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            server.settings = _settings_file(config, tmp_path)  # type: ignore[attr-defined]
            server.services.agent_login.check_seconds = 0.2
            yield server
    finally:
        remove_instance_containers(instance)


def _open(server: LiveServer, token: str) -> ClientConnection:
    """A login terminal as the token's account, its CLI stand-in already prompting (the caller closes it)."""
    url = server.ws_url + "/api/auth/claude/pty"
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(connect(url, open_timeout=10, additional_headers=bearer(token)))
        session_id(conn)
        read_until(conn, "Paste code here:")
        stack.pop_all()  # opened: it stays open past this block
    return conn


def _refused(server: LiveServer, token: str) -> str:
    """Opening a terminal as the token's account is refused as "busy" (503, enveloped); its message."""
    with pytest.raises(InvalidStatus) as refused:
        connect(
            server.ws_url + "/api/auth/claude/pty", open_timeout=10, additional_headers=bearer(token)
        ).close()
    response = refused.value.response
    assert response.status_code == 503
    body = json.loads(response.body or b"{}")
    assert body["success"] is False
    return str(body["message"])


def _login_processes(root: Path) -> set[int]:
    """The live CLI stand-ins whose HOME is under ``root`` (this test's agent homes, no other test's)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(FAKE_LOGIN).encode() not in (entry / "cmdline").read_bytes():
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        homes = [v[len(b"HOME=") :].decode() for v in environ if v.startswith(b"HOME=")]
        if homes and homes[0].startswith(str(root)) and _alive(int(entry.name)):
            found.add(int(entry.name))
    return found


def _settle(root: Path, expected: int) -> set[int]:
    """The stand-ins under ``root`` once their count is ``expected`` (processes end asynchronously)."""
    deadline = time.monotonic() + 10
    while len(found := _login_processes(root)) != expected:
        assert time.monotonic() < deadline, f"{len(found)} login processes, expected {expected}"
        time.sleep(0.05)
    time.sleep(0.3)  # and no late one appears
    found = _login_processes(root)
    assert len(found) == expected
    return found


@pytest.mark.docker
def test_one_account_cannot_take_every_login_terminal(team: LiveServer, tmp_path: Path) -> None:
    a_token, _ = add_user(team, "alice")
    b_token, _ = add_user(team, "bob")
    alice = as_user(team, a_token)
    opened = [_open(team, a_token) for _ in range(PER_ACCOUNT)]
    before = _settle(tmp_path, PER_ACCOUNT)
    try:
        # alice's next one, on either route, is refused with her own limit and how to free one
        message = _refused(team, a_token)
        assert OWN_LIMIT in message
        assert "close one of them or wait for its timeout" in message
        legacy = alice.post("/api/auth/claude/session").json()
        assert legacy["success"] is False and OWN_LIMIT in legacy["message"]
        # neither refusal started a login CLI
        assert _settle(tmp_path, PER_ACCOUNT) == before
        # bob still gets a terminal to sign in with
        opened.append(_open(team, b_token))
        _settle(tmp_path, PER_ACCOUNT + 1)
        # alice closes one and may open again
        opened.pop(0).close()
        _settle(tmp_path, PER_ACCOUNT)  # alice's closed one ended
        deadline = time.monotonic() + 10
        while True:
            try:
                opened.append(_open(team, a_token))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline, "the closed terminal still counts against alice"
                time.sleep(0.1)
        assert OWN_LIMIT in _refused(team, a_token)
        # the server-wide cap still holds: the API token takes the fourth, then bob (1 of his 2) is refused
        opened.append(_open(team, CANARY))
        assert len(opened) == MAX_OPEN_SESSIONS
        message = _refused(team, b_token)
        assert f"{MAX_OPEN_SESSIONS} login terminals are already open" in message
        assert OWN_LIMIT not in message
        _settle(tmp_path, MAX_OPEN_SESSIONS)
    finally:
        for conn in opened:
            conn.close()
    _settle(tmp_path, 0)


@pytest.mark.docker
def test_racing_opens_cannot_pass_the_accounts_limit(team: LiveServer, tmp_path: Path) -> None:
    a_token, _ = add_user(team, "alice")
    alice = as_user(team, a_token)
    answers: list[dict[str, object]] = []
    go = threading.Barrier(6)

    def open_one() -> None:
        go.wait()
        answers.append(alice.post("/api/auth/claude/session").json())

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = [a for a in answers if a["success"]]
    assert len(started) == PER_ACCOUNT, answers
    assert all(OWN_LIMIT in str(a["message"]) for a in answers if not a["success"])
    _settle(tmp_path, PER_ACCOUNT)


def test_the_per_account_limit_stays_below_the_server_wide_cap(tmp_path: Path) -> None:
    assert BOUNDS["agents.login_terminals_per_account"] == (1, MAX_OPEN_SESSIONS - 1)
    settings = tmp_path / "settings.toml"
    env = {"HOME": str(tmp_path / "home"), "ANYON_SETTINGS_FILE": str(settings)}
    for value in (0, MAX_OPEN_SESSIONS):
        settings.write_text(f"[agents]\nlogin_terminals_per_account = {value}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(environ=env)
        assert [e.key for e in caught.value.errors] == ["agents.login_terminals_per_account"]
    settings.write_text("[agents]\nlogin_terminals_per_account = 3\n")
    assert load_config(environ=env).agents.login_terminals_per_account == 3
