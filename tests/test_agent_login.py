"""The browser's agent login (spec §1.2, §2.7) through the real server: a stand-in login CLI in a PTY.

The WebSocket relays the terminal both ways, the credentials land in the agent home (0700), what was typed
is never kept, the login process ends with the socket, logout works without any network, and the socket
passes the same Host/Origin boundary as every other stream.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server

FAKE_LOGIN = Path(__file__).parent / "agents" / "fake_login.py"
CODE = "s3cret-login-code-42"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "agent-home"


@pytest.fixture
def server(tmp_path: Path, home: Path) -> Iterator[LiveServer]:
    agents = {"home": str(home), "claude_login_command": f"{sys.executable} {FAKE_LOGIN}"}
    with live_server(make_config(tmp_path, agents=agents)) as live:
        live.services.agent_login.check_seconds = 0.2
        yield live


def open_pty(server: LiveServer, **headers: str) -> ClientConnection:
    return connect(server.ws_url + "/api/auth/claude/pty", open_timeout=10, additional_headers=headers)


def read_until(conn: ClientConnection, needle: str, timeout: float = 15.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        frame = conn.recv(timeout=max(0.1, deadline - time.monotonic()))
        seen += frame.decode() if isinstance(frame, bytes) else frame
    return seen


def session_id(conn: ClientConnection) -> str:
    meta = conn.recv(timeout=10)
    assert isinstance(meta, str) and meta.startswith("__CLAUDE_META__"), meta
    return str(json.loads(meta[len("__CLAUDE_META__") :])["sessionId"])


def test_login_terminal_relays_both_ways_and_stores_the_login(server: LiveServer, home: Path) -> None:
    with open_pty(server) as conn:
        sid = session_id(conn)
        printed = read_until(conn, "Paste code here:")
        assert "isatty=True size=120x40" in printed  # a real terminal, with a size
        conn.send(CODE + "\r")
        done = read_until(conn, "Signed in")
        assert "Login successful." in done
    credentials = home / ".claude" / ".credentials.json"
    assert (
        json.loads(credentials.read_text())["claudeAiOauth"]["accessToken"] == f"token-from-{len(CODE)}-chars"
    )
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    log = server.ok("GET", f"/api/auth/claude/pty/session/{sid}/log")
    assert log["session_id"] == sid
    directions = {e["direction"] for e in log["entries"]}
    assert directions == {"input", "output"}
    assert any("Paste code here:" in e["data"] for e in log["entries"] if e["direction"] == "output")
    inputs = [e["data"] for e in log["entries"] if e["direction"] == "input"]
    assert inputs == [f"[{len(CODE) + 1} bytes]"]
    # the code typed never reaches the server's records: not the session log, not the DB
    assert CODE not in json.dumps(log)
    db = Path(server.services.config.database.file).read_bytes()
    assert CODE.encode() not in db
    # the login process ended with the socket
    pid = int((home / "login.pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_logout_removes_the_login_offline(server: LiveServer, home: Path) -> None:
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "x"}}')
    (home / ".claude.json").write_text(json.dumps({"oauthAccount": {"email": "a@b"}, "theme": "dark"}))
    assert server.ok("POST", "/api/auth/claude/logout") is None
    assert not (home / ".claude" / ".credentials.json").exists()
    assert json.loads((home / ".claude.json").read_text()) == {"theme": "dark"}
    assert server.ok("POST", "/api/auth/claude/logout") is None  # twice is fine


def test_closing_the_socket_ends_the_login_process(server: LiveServer, home: Path) -> None:
    with open_pty(server) as conn:
        session_id(conn)
        read_until(conn, "Paste code here:")
    pid = int((home / "login.pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert not (home / ".claude" / ".credentials.json").exists()


def test_the_legacy_session_routes(server: LiveServer, home: Path) -> None:
    sid = server.ok("POST", "/api/auth/claude/session")["session_id"]
    with server.client.stream("GET", f"/api/auth/claude/session/{sid}/stream") as stream:
        seen, typed = "", False
        for line in stream.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                seen += event.get("data", "")
                if "Paste code here:" in seen and not typed:
                    typed = True
                    sent = server.ok("POST", f"/api/auth/claude/session/{sid}/input", json={"input": "abc\n"})
                    assert sent is None
                if event["type"] == "success":
                    break
    assert (home / ".claude" / ".credentials.json").exists()
    assert server.ok("POST", f"/api/auth/claude/session/{sid}/cancel") is None
    missing = server.post(
        "/api/auth/claude/session/00000000-0000-0000-0000-000000000000/input", json={"input": "x"}
    )
    assert missing.status_code == 404
    bad = server.post(f"/api/auth/claude/session/{sid}/input", json={"input": 5})
    assert bad.status_code == 400 or bad.json()["success"] is False


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Host": "attacker.example"}],
)
def test_the_socket_keeps_the_http_boundary(server: LiveServer, home: Path, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_pty(server, **headers).close()
    assert refused.value.response.status_code == 403
    assert not (home / "login.pid").exists()  # nothing was started


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_the_socket_needs_the_token_when_the_server_is_reachable(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_auth import bearer, reachable_config

    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    config = reachable_config(tmp_path)
    config = dataclasses.replace(
        config,
        agents=dataclasses.replace(
            config.agents, home=str(home), claude_login_command=f"{sys.executable} {FAKE_LOGIN}"
        ),
    )
    with live_server(config) as server:
        for headers in ({}, bearer("wrong")):
            with pytest.raises(InvalidStatus) as refused:
                open_pty(server, **headers).close()
            assert refused.value.response.status_code == 401
        assert not (home / "login.pid").exists()  # nothing was started
        logout = server.post("/api/auth/claude/logout")
        assert logout.status_code == 401
        with open_pty(server, **bearer()) as conn:
            session_id(conn)
            read_until(conn, "Paste code here:")


def test_open_login_terminals_are_limited_and_time_out(tmp_path: Path, home: Path) -> None:
    from anyon.services.agents.agent_login import MAX_OPEN_SESSIONS

    agents = {
        "home": str(home),
        "claude_login_command": f"{sys.executable} {FAKE_LOGIN}",
        "login_timeout_seconds": 3.0,
    }
    with live_server(make_config(tmp_path, agents=agents)) as server:
        ids = [server.ok("POST", "/api/auth/claude/session")["session_id"] for _ in range(MAX_OPEN_SESSIONS)]
        refused = server.post("/api/auth/claude/session").json()
        assert refused["success"] is False and "already open" in refused["message"]
        with pytest.raises(InvalidStatus) as denied:
            open_pty(server).close()
        assert denied.value.response.status_code == 503
        deadline = time.monotonic() + 15  # nobody watches them: they end at login_timeout_seconds
        while not all(server.services.agent_login.get(i).ended for i in ids):
            assert time.monotonic() < deadline, "login sessions were not ended at their timeout"
            time.sleep(0.1)
        assert server.ok("POST", "/api/auth/claude/session")["session_id"]
