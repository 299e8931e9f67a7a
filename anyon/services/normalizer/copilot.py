"""GitHub Copilot CLI's plain-text output (``--no-color``, prompt on stdin), as the reference reads it.

Copilot prints its answer as text: each paragraph (lines up to a blank line) becomes one assistant message,
grown in place (``replace``) as its lines arrive. Its output names no session: the server gives a first run
its session id (``--session-id``, see agent_commands.py) and the normaliser records it once Copilot
answered, so that a follow-up runs ``--resume <id>``. Its errors arrive on stderr ("Error: No authentication
information found." when it is not signed in); they are read by failures.py.
"""

from __future__ import annotations

from anyon.services.logs.jsonpatch import Op
from anyon.services.normalizer.entries import Clock, LogNormalizer, entry, simple_type
from anyon.services.normalizer.failures import is_npm_notice
from anyon.services.normalizer.text import strip_ansi


class CopilotNormalizer(LogNormalizer):
    def __init__(self, *, clock: Clock | None = None, keep_entries: bool = True) -> None:
        super().__init__(clock=clock, keep_entries=keep_entries)
        self.requires_answer = True
        self._paragraph: list[str] = []
        self._paragraph_index: int | None = None

    def _stdout_line(self, line: str) -> list[Op]:
        text = strip_ansi(line).rstrip()
        if not text.strip():
            self._paragraph, self._paragraph_index = [], None
            return []
        self._paragraph.append(text)
        content = "\n".join(self._paragraph)
        self._last_assistant = content
        value = entry(simple_type("assistant_message"), content, timestamp=self._now())
        if self.session_id is None and self.planned_session_id:
            self.session_id = (
                self.planned_session_id
            )  # it answered: the session exists, a follow-up resumes it
        if self._paragraph_index is None:
            self._paragraph_index = self.entry_count
            return [self._add(value)]
        return [self._replace(self._paragraph_index, value)]

    def _stderr_line(self, line: str) -> list[Op]:
        text = strip_ansi(line).strip()
        if not text:
            return []
        self._paragraph, self._paragraph_index = [], None
        if is_npm_notice(text):
            return [self._system(text)]
        return self._diagnosed("COPILOT", text) or [self._error(text)]
