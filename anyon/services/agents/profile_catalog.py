"""The executor catalogue: which coding agents exist, their capabilities, their options and built-in variants.

A profile is ``executors.<EXECUTOR>.<VARIANT> = {<EXECUTOR>: {options}}`` (spec anyon-api.md §5.1,
types.md §4). This module holds the facts every layer shares — the executor names and aliases, the option
types a profile may set, the built-in defaults (types.md §4.5), the ``{executor, variant?}`` id and the
errors a bad profile raises — so that the command lines (``agent_commands``), the layering and validation
(``profile_layers``) and the merged view (``executors``) each import it and not one another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

EXECUTORS: Final = (
    "CLAUDE_CODE",
    "AMP",
    "GEMINI",
    "CODEX",
    "OPENCODE",
    "CURSOR_AGENT",
    "QWEN_CODE",
    "COPILOT",
)
EXECUTOR_ALIASES: Final = {"CURSOR": "CURSOR_AGENT"}

CAPABILITIES: Final[dict[str, list[str]]] = {
    "CLAUDE_CODE": ["SESSION_FORK"],
    "AMP": ["SESSION_FORK"],
    "GEMINI": ["SESSION_FORK"],
    "CODEX": ["SESSION_FORK"],
    "OPENCODE": [],
    "CURSOR_AGENT": ["SETUP_HELPER"],
    "QWEN_CODE": ["SESSION_FORK"],
    "COPILOT": [],
}

DEFAULT_VARIANT: Final = "DEFAULT"

STR, BOOL, STRLIST = "string", "boolean", "array of strings"
COMMON_OPTIONS: Final = {"append_prompt": STR, "base_command_override": STR, "additional_params": STRLIST}
_ENUMS: Final = {
    "sandbox": ("auto", "read-only", "workspace-write", "danger-full-access"),
    "ask_for_approval": ("unless-trusted", "on-failure", "on-request", "never"),
    "model_reasoning_effort": ("low", "medium", "high"),
    "model_reasoning_summary": ("auto", "concise", "detailed", "none"),
    "model_reasoning_summary_format": ("none", "experimental"),
}
OPTION_TYPES: Final[dict[str, dict[str, Any]]] = {
    "CLAUDE_CODE": {
        "claude_code_router": BOOL,
        "plan": BOOL,
        "approvals": BOOL,
        "model": STR,
        "dangerously_skip_permissions": BOOL,
    },
    "AMP": {"dangerously_allow_all": BOOL},
    "GEMINI": {"model": ("default", "flash"), "yolo": BOOL},
    "CODEX": {
        "sandbox": _ENUMS["sandbox"],
        "ask_for_approval": _ENUMS["ask_for_approval"],
        "oss": BOOL,
        "model": STR,
        "model_reasoning_effort": _ENUMS["model_reasoning_effort"],
        "model_reasoning_summary": _ENUMS["model_reasoning_summary"],
        "model_reasoning_summary_format": _ENUMS["model_reasoning_summary_format"],
        "profile": STR,
        "base_instructions": STR,
        "include_plan_tool": BOOL,
        "include_apply_patch_tool": BOOL,
    },
    "OPENCODE": {"model": STR, "agent": STR},
    "CURSOR_AGENT": {"force": BOOL, "model": STR},
    "QWEN_CODE": {"yolo": BOOL},
    "COPILOT": {
        "model": STR,
        "allow_all_tools": BOOL,
        "allow_tool": STR,
        "deny_tool": STR,
        "add_dir": STRLIST,
        "disable_mcp_server": STRLIST,
    },
}


def _variants(executor: str, variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {executor: {"append_prompt": None, **opts}} for name, opts in variants.items()}


def _cursor(model: str) -> dict[str, Any]:
    return {"force": True, "model": model}


def _copilot(model: str | None) -> dict[str, Any]:
    return {"allow_all_tools": True} | ({"model": model} if model else {})


BUILTIN_PROFILES: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "CLAUDE_CODE": _variants(
        "CLAUDE_CODE",
        {
            "DEFAULT": {"dangerously_skip_permissions": True},
            "PLAN": {"plan": True},
            "APPROVALS": {"approvals": True},
        },
    ),
    "AMP": _variants("AMP", {"DEFAULT": {"dangerously_allow_all": True}}),
    "GEMINI": _variants(
        "GEMINI", {"DEFAULT": {"model": "default", "yolo": True}, "FLASH": {"model": "flash", "yolo": True}}
    ),
    "CODEX": _variants(
        "CODEX",
        {
            "DEFAULT": {"sandbox": "danger-full-access"},
            "HIGH": {"sandbox": "danger-full-access", "model_reasoning_effort": "high"},
            "APPROVALS": {"sandbox": "workspace-write", "ask_for_approval": "unless-trusted"},
        },
    ),
    "OPENCODE": _variants("OPENCODE", {"DEFAULT": {}}),
    "QWEN_CODE": _variants("QWEN_CODE", {"DEFAULT": {"yolo": True}}),
    "CURSOR_AGENT": _variants(
        "CURSOR_AGENT",
        {
            "DEFAULT": _cursor("auto"),
            "SONNET_4_5": _cursor("sonnet-4.5"),
            "SONNET_4_5_THINKING": _cursor("sonnet-4.5-thinking"),
            "OPUS_4_1": _cursor("opus-4.1"),
            "GPT_5": _cursor("gpt-5"),
            "GROK": _cursor("grok"),
        },
    ),
    "COPILOT": _variants(
        "COPILOT",
        {
            "DEFAULT": _copilot(None),
            "GPT_5": _copilot("gpt-5"),
            "CLAUDE_SONNET_4_5": _copilot("claude-sonnet-4.5"),
            "CLAUDE_SONNET_4": _copilot("claude-sonnet-4"),
        },
    ),
}


class ProfileError(ValueError):
    """Invalid profile input; the message is meant for the user (the API returns it as a soft error)."""


class UnknownExecutorError(ProfileError):
    pass


class UnknownVariantError(ProfileError):
    pass


@dataclass(frozen=True)
class ExecutorProfileId:
    """``{executor, variant?}``; ``variant`` ``None`` means DEFAULT and is left out of the JSON."""

    executor: str
    variant: str | None = None

    @property
    def effective_variant(self) -> str:
        return self.variant or DEFAULT_VARIANT

    def to_json(self) -> dict[str, str]:
        out = {"executor": self.executor}
        if self.variant is not None:
            out["variant"] = self.variant
        return out


def canonical_executor(name: str) -> str:
    """``claude-code``/``claude_code``/``CLAUDE_CODE`` → ``CLAUDE_CODE``; ``CURSOR`` → ``CURSOR_AGENT``."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownExecutorError("executor must be a non-empty string")
    key = name.strip().replace("-", "_").upper()
    key = EXECUTOR_ALIASES.get(key, key)
    if key not in EXECUTORS:
        raise UnknownExecutorError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
    return key


def canonical_variant(name: str) -> str:
    """Variant keys are SCREAMING_SNAKE_CASE: ``plan`` → ``PLAN``, ``sonnet-4-5`` → ``SONNET_4_5``."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownVariantError("variant must be a non-empty string")
    key = re.sub(r"[^A-Za-z0-9]+", "_", name.strip()).strip("_").upper()
    if not key:
        raise UnknownVariantError(f"invalid variant name {name!r}")
    return key
