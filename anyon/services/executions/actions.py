"""``ExecutorAction`` JSON (spec §1.6) and the chain rules that decide what runs next (spec §5.3)."""

from __future__ import annotations

from typing import Any

from anyon.services.agents.profile_catalog import ExecutorProfileId

SCRIPT = "ScriptRequest"
INITIAL = "CodingAgentInitialRequest"
FOLLOW_UP = "CodingAgentFollowUpRequest"
SETUP, CLEANUP, DEV_SERVER = "SetupScript", "CleanupScript", "DevServer"

_CONTEXT_REASON = {SETUP: "setupscript", CLEANUP: "cleanupscript", DEV_SERVER: "devserver"}


def script(text: str, context: str, next_action: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "typ": {"type": SCRIPT, "script": text, "language": "Bash", "context": context},
        "next_action": next_action,
    }


def initial(
    prompt: str, profile: ExecutorProfileId, next_action: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "typ": {"type": INITIAL, "prompt": prompt, "executor_profile_id": profile.to_json()},
        "next_action": next_action,
    }


def follow_up(
    prompt: str, session_id: str, profile: ExecutorProfileId, next_action: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "typ": {
            "type": FOLLOW_UP,
            "prompt": prompt,
            "session_id": session_id,
            "executor_profile_id": profile.to_json(),
        },
        "next_action": next_action,
    }


def cleanup_or_none(cleanup_script: str | None) -> dict[str, Any] | None:
    return script(cleanup_script, CLEANUP) if cleanup_script and cleanup_script.strip() else None


def is_agent(action: dict[str, Any]) -> bool:
    return bool(action["typ"]["type"] in (INITIAL, FOLLOW_UP))


def run_reason_of(action: dict[str, Any]) -> str:
    """The run_reason a process of ``action`` gets: scripts by their context, agents ``codingagent``."""
    typ = action["typ"]
    if typ["type"] == SCRIPT:
        return _CONTEXT_REASON.get(typ.get("context", ""), "setupscript")
    return "codingagent"


def task_prompt(title: str, description: str | None) -> str:
    """The title, plus a blank line and the description when it is not blank (spec §5.3)."""
    if description and description.strip():
        return f"{title}\n\n{description}"
    return title
