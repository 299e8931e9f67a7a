"""The contract's per-agent MCP constants and the catalogue of suggested servers (types.md §5).

The catalogue is written once in the Claude dialect and rewritten for each agent's own format, as the
reference does: Gemini and Qwen spell remote servers ``httpUrl``, Cursor wants bare ``url``, Codex only
runs local (stdio) servers, OpenCode has its ``local``/``remote`` shapes and Copilot lists the tools.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class McpDialect:
    servers_path: tuple[str, ...]
    template: dict[str, Any]
    is_toml: bool = False


_DEFAULT = McpDialect(("mcpServers",), {"mcpServers": {}})
DIALECTS: dict[str, McpDialect] = {
    "CODEX": McpDialect(("mcp_servers",), {"mcp_servers": {}}, is_toml=True),
    "AMP": McpDialect(("amp.mcpServers",), {"amp.mcpServers": {}}),  # one key that contains a dot
    "OPENCODE": McpDialect(("mcp",), {"mcp": {}, "$schema": "https://opencode.ai/config.json"}),
}


def dialect(executor: str) -> McpDialect:
    return DIALECTS.get(executor, _DEFAULT)


_SERVERS: dict[str, Any] = {
    "anyon": {"command": "npx", "args": ["-y", "anyon@latest", "--mcp"]},
    "context7": {
        "type": "http",
        "url": "https://mcp.context7.com/mcp",
        "headers": {"CONTEXT7_API_KEY": "YOUR_API_KEY"},
    },
    "playwright": {"command": "npx", "args": ["@playwright/mcp@latest"]},
}
_META: dict[str, Any] = {
    "anyon": {
        "name": "Anyon",
        "description": "Lets the agent read and create tasks on this board",
        "url": "https://www.npmjs.com/package/anyon",
        "icon": None,
    },
    "context7": {
        "name": "Context7",
        "description": "Up-to-date documentation and code examples of libraries",
        "url": "https://github.com/upstash/context7",
        "icon": None,
    },
    "playwright": {
        "name": "Playwright",
        "description": "Drives a web browser: open pages, click, read and take screenshots",
        "url": "https://github.com/microsoft/playwright-mcp",
        "icon": None,
    },
}


def _is_http(server: dict[str, Any]) -> bool:
    return server.get("type") == "http" or ("url" in server and "command" not in server)


def _rewrite(executor: str, server: dict[str, Any]) -> dict[str, Any] | None:
    """One catalogue entry in ``executor``'s dialect; None when that agent cannot run it."""
    server = copy.deepcopy(server)
    http = _is_http(server)
    if executor in ("GEMINI", "QWEN_CODE") and http:
        headers = {**server.get("headers", {}), "Accept": "application/json, text/event-stream"}
        return {"httpUrl": server["url"], "headers": headers}
    if executor == "CURSOR_AGENT" and http:
        return {"url": server["url"], "headers": server.get("headers", {})}
    if executor == "CODEX":
        return None if http else server
    if executor == "OPENCODE":
        if http:
            return {
                "type": "remote",
                "url": server["url"],
                "headers": server.get("headers", {}),
                "enabled": True,
            }
        return {"type": "local", "command": [server["command"], *server.get("args", [])], "enabled": True}
    if executor == "COPILOT":
        return {**server, "tools": ["*"]}
    return server


def preconfigured(executor: str) -> dict[str, Any]:
    """The catalogue for ``executor``, with its ``meta`` key (names, descriptions, links)."""
    servers = {name: _rewrite(executor, entry) for name, entry in _SERVERS.items()}
    kept = {name: entry for name, entry in servers.items() if entry is not None}
    return {**kept, "meta": {name: copy.deepcopy(_META[name]) for name in kept}}
