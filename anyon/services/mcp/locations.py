"""Where each agent reads its MCP configuration: one function, so the home can move in one place.

Paths are relative to the home the *agents* run with. Locally that is the user's home (the agents are
host processes of that user). In cloud mode agents run in containers whose home is a per-container
tmpfs, so there is no shared file yet; the deployment passes the directory it intends to mount as the
agents' home (see ``agent_home_for`` in :mod:`anyon.services.container`), and when a persistent agent
home is mounted into the containers this is the only module to point at it.
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


def agent_home_for(is_cloud: bool, data_dir: str) -> str:
    """The home directory whose config files the agents read.

    Local: the home of the user running the server (``$HOME``), where the agents already look. Cloud:
    ``<data_dir>/agent-home`` until the containers mount a persistent agent home; point this at it then.
    """
    if is_cloud:
        return os.path.join(data_dir, "agent-home")
    return os.path.expanduser("~")


def mcp_config_path(executor: str, agent_home: str) -> str | None:
    """The absolute path of ``executor``'s MCP config file under ``agent_home``; None without MCP."""
    parts = CONFIG_FILES.get(executor)
    return os.path.join(agent_home, *parts) if parts else None
