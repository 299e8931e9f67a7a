"""Log normalisers: an agent's raw output → NormalizedEntry patches for the normalized-logs stream.

:func:`normalizer_for` picks the parser of an executor. Claude Code has a stream-json parser; the other agents
get :class:`PlainTextNormalizer` (stdout lines as assistant messages) until they have their own.
"""

from __future__ import annotations

from anyon.services.normalizer.acp import AcpNormalizer
from anyon.services.normalizer.claude import ClaudeStreamJsonNormalizer
from anyon.services.normalizer.codex import CodexAppServerNormalizer
from anyon.services.normalizer.entries import (
    SUMMARY_MAX_CHARS,
    Clock,
    Entry,
    LogNormalizer,
    PlainTextNormalizer,
    entry,
    error_type,
    setup_required_entry,
    simple_type,
    tool_use_type,
    utc_now,
)


def normalizer_for(
    executor: str, *, worktree: str | None = None, clock: Clock | None = None, keep_entries: bool = True
) -> LogNormalizer:
    """A fresh normaliser for one execution of ``executor`` (a canonical BaseCodingAgent name).

    ``keep_entries=False`` for a live process (bounded memory), True to rebuild a stored conversation.
    """
    if executor == "CLAUDE_CODE":
        return ClaudeStreamJsonNormalizer(worktree=worktree, clock=clock, keep_entries=keep_entries)
    if executor in ("GEMINI", "QWEN_CODE"):
        agent = "Gemini CLI" if executor == "GEMINI" else "Qwen Code"
        return AcpNormalizer(agent=agent, worktree=worktree, clock=clock, keep_entries=keep_entries)
    if executor == "CODEX":
        return CodexAppServerNormalizer(worktree=worktree, clock=clock, keep_entries=keep_entries)
    return PlainTextNormalizer(clock=clock, keep_entries=keep_entries)


__all__ = [
    "SUMMARY_MAX_CHARS",
    "AcpNormalizer",
    "ClaudeStreamJsonNormalizer",
    "Clock",
    "CodexAppServerNormalizer",
    "Entry",
    "LogNormalizer",
    "PlainTextNormalizer",
    "entry",
    "error_type",
    "normalizer_for",
    "setup_required_entry",
    "simple_type",
    "tool_use_type",
    "utc_now",
]
