"""Amp's ``--execute --stream-json`` output: Claude Code-compatible stream-json (Amp documents it so).

The conversation is read by the Claude parser; what differs is everything that is *not* stream-json. Run
without credentials Amp prints "No API key found. Starting login flow..." on stdout and waits for a code
from stdin; that line, npm's errors and network failures become the sentences of failures.py, and a run
that never produced an assistant message is not a success.
"""

from __future__ import annotations

from anyon.services.logs.jsonpatch import Op
from anyon.services.normalizer.claude import ClaudeStreamJsonNormalizer
from anyon.services.normalizer.entries import Clock
from anyon.services.normalizer.failures import is_npm_notice
from anyon.services.normalizer.text import strip_ansi


class AmpNormalizer(ClaudeStreamJsonNormalizer):
    def __init__(
        self, *, worktree: str | None = None, clock: Clock | None = None, keep_entries: bool = True
    ) -> None:
        super().__init__(worktree=worktree, clock=clock, keep_entries=keep_entries)
        self.executor = "AMP"
        self.requires_answer = True

    def _other_line(self, line: str) -> list[Op]:
        text = strip_ansi(line).strip()
        if not text:
            return []
        return self._diagnosed("AMP", text) or [self._system(text)]

    def _stderr_line(self, line: str) -> list[Op]:
        text = strip_ansi(line).strip()
        if not text:
            return []
        if is_npm_notice(text):
            return [self._system(text)]
        return self._diagnosed("AMP", text) or [self._error(text)]
