"""Per-agent command lines: the base command of each executor and the params its profile options become.

Spec anyon-api.md §5.1 (command shape): ``base + params + additional_params``. Kept apart from the profile
layering because this is the one place that knows each agent CLI's flags; adding an agent or a flag
touches this module and the catalogue (``profile_catalog``), nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from anyon.services.agents.launchers import AGENT_CLIS, base_command

# Base commands (spec §5.1 table, with the versions the npm registry serves); the variant's options become
# params after them. Which binary actually runs is decided at start (launchers.py).
BASE_COMMANDS: Final = {name: base_command(name) for name in AGENT_CLIS}


@dataclass(frozen=True)
class Command:
    """What to spawn: ``argv`` (program first) and whether the prompt is written to stdin.

    ``base_tokens`` is how many leading tokens are the executor's default base command (``None`` when the
    profile overrides it) and ``cli`` names that base's CLI: the launcher may swap them for an installed
    binary.
    """

    argv: list[str]
    prompt_via_stdin: bool
    executor: str = ""
    cli: str = ""
    base_tokens: int | None = None


def command_parts(
    executor: str, o: Mapping[str, Any], session: str | None, new_session: str | None = None
) -> tuple[str, list[str], list[str]]:
    """(default base command, params from options, session params: a follow-up's, or a new session's id)."""
    base = BASE_COMMANDS[executor]
    params: list[str] = []
    follow: list[str] = []
    if executor == "CLAUDE_CODE":
        if o.get("claude_code_router"):
            base = BASE_COMMANDS["CLAUDE_CODE_ROUTER"]
        params.append("-p")
        if o.get("plan") or o.get("approvals"):
            params += ["--permission-prompt-tool=stdio", "--permission-mode=bypassPermissions"]
        if o.get("dangerously_skip_permissions"):
            params.append("--dangerously-skip-permissions")
        if o.get("model"):
            params += ["--model", o["model"]]
        params += [
            "--verbose",
            "--output-format=stream-json",
            "--input-format=stream-json",
            "--include-partial-messages",
        ]
        if session:
            follow = ["--fork-session", "--resume", session]
    elif executor == "AMP":
        if session:
            params += ["threads", "continue", session]
        params += ["--execute", "--stream-json"]
        if o.get("dangerously_allow_all"):
            params.append("--dangerously-allow-all")
    elif executor in ("GEMINI", "QWEN_CODE"):
        if executor == "GEMINI" and o.get("model") == "flash":
            params += ["--model", "gemini-2.5-flash"]
        if o.get("yolo"):
            params.append("--yolo")
        params.append("--experimental-acp")
    elif executor == "CODEX":
        params.append("app-server")
        if o.get("oss"):
            params.append("--oss")
    elif executor == "OPENCODE":
        params += ["run", "--print-logs", "--format", "json"]
        if o.get("model"):
            params += ["--model", o["model"]]
        if o.get("agent"):
            params += ["--agent", o["agent"]]
        if session:
            follow = ["--session", session]
    elif executor == "CURSOR_AGENT":
        params += ["-p", "--output-format=stream-json"]
        if o.get("force"):
            params.append("--force")
        if o.get("model"):
            params += ["--model", o["model"]]
        if session:
            follow = ["--resume", session]
    elif executor == "COPILOT":
        params += ["--no-color"]
        if o.get("allow_all_tools"):
            params.append("--allow-all-tools")
        if o.get("model"):
            params += ["--model", o["model"]]
        if o.get("allow_tool"):
            params += ["--allow-tool", o["allow_tool"]]
        if o.get("deny_tool"):
            params += ["--deny-tool", o["deny_tool"]]
        for d in o.get("add_dir") or []:
            params += ["--add-dir", d]
        for m in o.get("disable_mcp_server") or []:
            params += ["--disable-mcp-server", m]
        if session:
            follow = ["--resume", session]
        elif new_session:
            follow = ["--session-id", new_session]
    return base, params, follow
