"""MCP server settings through the real server, on real files in a test home (types.md §5)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server

CODEX_TOML = """\
# my codex settings
model = "o3"  # the one I like

[profiles.fast]
model = "o4-mini"

[mcp_servers.old]
command = "old-server"
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the agents' home locally: never the real one in a test
    return home


@pytest.fixture
def server(tmp_path: Path, home: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path, notifications={"desktop": False})) as live:
        yield live


def test_claude_json_keeps_its_other_keys(server: LiveServer, home: Path) -> None:
    config = home / ".claude.json"
    config.write_text(
        json.dumps({"numStartups": 7, "projects": {"/x": {"allowedTools": []}}, "mcpServers": {}})
    )
    config.chmod(0o600)
    got = server.ok("GET", "/api/mcp-config", params={"executor": "CLAUDE_CODE"})
    assert got["config_path"] == str(config)
    mcp = got["mcp_config"]
    assert mcp["servers"] == {} and mcp["servers_path"] == ["mcpServers"] and mcp["is_toml_config"] is False
    assert mcp["template"] == {"mcpServers": {}}
    assert {"anyon", "context7", "playwright", "meta"} <= set(mcp["preconfigured"])
    servers = {
        "pw": {"command": "npx", "args": ["@playwright/mcp@latest"]},
        "c7": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
    }
    assert server.ok(
        "POST", "/api/mcp-config", params={"executor": "claude-code"}, json={"servers": servers}
    ) == ("Added 2 MCP server(s)")
    saved = json.loads(config.read_text())
    assert saved["numStartups"] == 7 and saved["projects"] == {"/x": {"allowedTools": []}}
    assert saved["mcpServers"] == servers and list(saved) == ["numStartups", "projects", "mcpServers"]
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert (
        server.ok("GET", "/api/mcp-config", params={"executor": "CLAUDE_CODE"})["mcp_config"]["servers"]
        == servers
    )
    message = server.ok(
        "POST", "/api/mcp-config", params={"executor": "CLAUDE_CODE"}, json={"servers": {"pw": servers["pw"]}}
    )
    assert message == "Updated MCP server configuration (was 2, now 1)"
    assert server.ok("POST", "/api/mcp-config", params={"executor": "CLAUDE_CODE"}, json={"servers": {}}) == (
        "No MCP servers configured"
    )


def test_codex_toml_round_trips_comments_and_other_tables(server: LiveServer, home: Path) -> None:
    config = home / ".codex" / "config.toml"
    config.parent.mkdir()
    config.write_text(CODEX_TOML)
    got = server.ok("GET", "/api/mcp-config", params={"executor": "CODEX"})
    mcp = got["mcp_config"]
    assert got["config_path"] == str(config) and mcp["is_toml_config"] is True
    assert mcp["servers"] == {"old": {"command": "old-server"}} and mcp["servers_path"] == ["mcp_servers"]
    assert all("url" not in v for k, v in mcp["preconfigured"].items() if k != "meta")  # stdio only
    new = {"pw": {"command": "npx", "args": ["@playwright/mcp@latest"], "env": {"A": "1"}}}
    assert server.ok("POST", "/api/mcp-config", params={"executor": "CODEX"}, json={"servers": new}) == (
        "Updated MCP server configuration (1 server(s))"
    )
    text = config.read_text()
    assert "# my codex settings" in text and "# the one I like" in text and "[profiles.fast]" in text
    parsed = tomllib.loads(text)
    assert parsed["model"] == "o3" and parsed["profiles"] == {"fast": {"model": "o4-mini"}}
    assert parsed["mcp_servers"] == new


def test_a_missing_file_is_created_from_the_template(server: LiveServer, home: Path) -> None:
    got = server.ok("GET", "/api/mcp-config", params={"executor": "OPENCODE"})
    assert got["mcp_config"]["servers"] == {} and got["mcp_config"]["servers_path"] == ["mcp"]
    entry = got["mcp_config"]["preconfigured"]["playwright"]
    assert entry["type"] == "local" and entry["command"][0] == "npx" and entry["enabled"] is True
    server.ok(
        "POST", "/api/mcp-config", params={"executor": "OPENCODE"}, json={"servers": {"x": {"type": "local"}}}
    )
    saved = json.loads((home / ".config" / "opencode" / "opencode.json").read_text())
    assert saved == {"mcp": {"x": {"type": "local"}}, "$schema": "https://opencode.ai/config.json"}
    amp = server.ok("GET", "/api/mcp-config", params={"executor": "AMP"})["mcp_config"]
    assert amp["servers_path"] == ["amp.mcpServers"]
    server.ok(
        "POST", "/api/mcp-config", params={"executor": "AMP"}, json={"servers": {"a": {"command": "a"}}}
    )
    assert json.loads((home / ".config" / "amp" / "settings.json").read_text()) == {
        "amp.mcpServers": {"a": {"command": "a"}}
    }
    gemini = server.ok("GET", "/api/mcp-config", params={"executor": "GEMINI"})["mcp_config"]["preconfigured"]
    assert "httpUrl" in gemini["context7"] and gemini["context7"]["headers"]["Accept"]


def test_a_file_that_does_not_parse_is_reported_and_left_alone(server: LiveServer, home: Path) -> None:
    bad_json = home / ".gemini" / "settings.json"
    bad_json.parent.mkdir()
    bad_json.write_text('{"theme": "dark", ')
    for method in ("GET", "POST"):
        body = server.client.request(
            method,
            "/api/mcp-config",
            params={"executor": "GEMINI"},
            json={"servers": {}} if method == "POST" else None,
        ).json()
        assert (
            body["success"] is False
            and "not valid JSON" in body["message"]
            and str(bad_json) in body["message"]
        )
    assert bad_json.read_text() == '{"theme": "dark", '
    bad_toml = home / ".codex" / "config.toml"
    bad_toml.parent.mkdir()
    bad_toml.write_text("model = \n[[[")
    body = server.post(
        "/api/mcp-config", params={"executor": "CODEX"}, json={"servers": {"a": {"command": "a"}}}
    ).json()
    assert body["success"] is False and "not valid TOML" in body["message"]
    assert bad_toml.read_text() == "model = \n[[["
    array = home / ".qwen" / "settings.json"
    array.parent.mkdir()
    array.write_text("[1, 2]")
    body = server.get("/api/mcp-config", params={"executor": "QWEN_CODE"}).json()
    assert body["success"] is False and "object" in body["message"]


def test_unknown_executor_and_bad_bodies(server: LiveServer, home: Path) -> None:
    for executor in ["NOPE", "../../etc", ""]:
        body = server.get("/api/mcp-config", params={"executor": executor}).json()
        assert body["success"] is False, executor
    assert server.get("/api/mcp-config").status_code == 400
    for servers in [[1, 2], "x", {"a": 1}, None]:
        response = server.post(
            "/api/mcp-config", params={"executor": "CLAUDE_CODE"}, json={"servers": servers}
        )
        assert response.json()["success"] is False, servers
    assert not (home / ".claude.json").exists()  # nothing written by any of them


def test_cloud_mode_never_follows_a_link_in_the_agents_home(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        mode="cloud",
        notifications={"desktop": False},
        docker={"user": f"{os.getuid()}:{os.getgid()}", "network": "none"},
    )
    agent_home = Path(config.paths.base_dir) / "agent-home"  # the cloud default of agents.home
    (agent_home / ".gemini").mkdir(parents=True)
    secret = tmp_path / "server-secret.json"
    secret.write_text('{"mcpServers": {"leak": {"command": "secret"}}}')
    (agent_home / ".gemini" / "settings.json").symlink_to(secret)
    os.mkfifo(agent_home / ".claude.json")
    try:
        with live_server(config) as server:
            body = server.get("/api/mcp-config", params={"executor": "GEMINI"}).json()
            assert body["success"] is False and "symbolic link" in body["message"]
            fifo = server.get("/api/mcp-config", params={"executor": "CLAUDE_CODE"}).json()
            assert fifo["success"] is False and "regular file" in fifo["message"]
            ok = server.ok("GET", "/api/mcp-config", params={"executor": "CODEX"})
            assert ok["config_path"] == str(agent_home / ".codex" / "config.toml")
    except Exception as exc:  # the cloud deployment needs Docker to start; the file logic does not
        if "docker" in repr(exc).lower():
            pytest.skip(f"cloud deployment could not start: {exc}")
        raise
    assert secret.read_text() == '{"mcpServers": {"leak": {"command": "secret"}}}'
