"""Log normalisers: an agent's raw output → NormalizedEntry patches for the normalized-logs stream.

:func:`normalizer_for` picks the parser of an executor. Claude Code has a stream-json parser; the other agents
with their own parsers (Amp, Cursor, OpenCode, Copilot) get theirs; the rest get :class:`PlainTextNormalizer`
(stdout lines as assistant messages).
"""

from __future__ import annotations

from anyon.services.normalizer.acp import AcpNormalizer
from anyon.services.normalizer.amp import AmpNormalizer
from anyon.services.normalizer.claude import ClaudeStreamJsonNormalizer
from anyon.services.normalizer.codex import CodexAppServerNormalizer
from anyon.services.normalizer.copilot import CopilotNormalizer
from anyon.services.normalizer.cursor import CursorNormalizer
from anyon.services.normalizer.entries import (
    COMMAND_PREFIX,
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
from anyon.services.normalizer.failures import is_agent
from anyon.services.normalizer.opencode import OpenCodeNormalizer


def normalizer_for(
    executor: str, *, worktree: str | None = None, clock: Clock | None = None, keep_entries: bool = True
) -> LogNormalizer:
    """A fresh normaliser for one execution of ``executor`` (a canonical BaseCodingAgent name).

    ``keep_entries=False`` for a live process (bounded memory), True to rebuild a stored conversation.
    """
    if executor == "CLAUDE_CODE":
        return ClaudeStreamJsonNormalizer(worktree=worktree, clock=clock, keep_entries=keep_entries)
    if executor in ("GEMINI", "QWEN_CODE"):
        return AcpNormalizer(executor=executor, worktree=worktree, clock=clock, keep_entries=keep_entries)
    if executor == "CODEX":
        return CodexAppServerNormalizer(worktree=worktree, clock=clock, keep_entries=keep_entries)
    if executor == "AMP":
        return AmpNormalizer(worktree=worktree, clock=clock, keep_entries=keep_entries)
    if executor == "CURSOR_AGENT":
        return CursorNormalizer(worktree=worktree, clock=clock, keep_entries=keep_entries)
    if executor == "OPENCODE":
        return OpenCodeNormalizer(clock=clock, keep_entries=keep_entries)
    if executor == "COPILOT":
        return CopilotNormalizer(clock=clock, keep_entries=keep_entries)
    known = executor if is_agent(executor) else None  # a script's stderr is not read as an agent's
    return PlainTextNormalizer(executor=known, clock=clock, keep_entries=keep_entries)


__all__ = [
    "COMMAND_PREFIX",
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
