"""Where each agent reads its MCP configuration: one function, so the home can move in one place.

Paths are relative to the home the *agents* run with, chosen by ``agent_home_for`` in
:mod:`anyon.services.composition.agents`: locally ``agents.home`` or the user's own home (the agents are
host processes of that user); in cloud mode the agent home that is mounted read-only into every attempt's
container and copied into its HOME when the container is created.
"""

from __future__ import annotations

import os

#: executor → path of its MCP config file, relative to the agent home (the reference's locations).
CONFIG_FILES: dict[str, tuple[str, ...]] = {
    "CLAUDE_CODE": (".claude.json",),
    "AMP": (".config", "amp", "settings.json"),
    "GEMINI": (".gemini", "settings.json"),
    "CODEX": (".codex", "config.toml"),
    "OPENCODE": (".config", "opencode", "opencode.json"),
    "CURSOR_AGENT": (".cursor", "mcp.json"),
    "QWEN_CODE": (".qwen", "settings.json"),
    "COPILOT": (".copilot", "mcp-config.json"),
}


def mcp_config_path(executor: str, agent_home: str) -> str | None:
    """The absolute path of ``executor``'s MCP config file under ``agent_home``; None without MCP."""
    parts = CONFIG_FILES.get(executor)
    return os.path.join(agent_home, *parts) if parts else None
