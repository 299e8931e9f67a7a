"""Where the time goes between ``POST /api/task-attempts`` and the agent's first output byte.

The engine marks each step of an attempt's start; the benchmark and the metrics read the marks. Only
the first mark of a step counts (a follow-up does not overwrite the attempt's start), and the table is
bounded so a long-running server does not grow it.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable

STEPS = ("requested", "worktree_ready", "container_ready", "spawned", "first_byte")


class StartTimings:
    def __init__(self, capacity: int = 1000) -> None:
        self._capacity = capacity
        self._marks: collections.OrderedDict[uuid.UUID, dict[str, float]] = collections.OrderedDict()
        self.on_first_byte: Callable[[float], None] | None = None

    def mark(self, attempt_id: uuid.UUID, step: str, at: float | None = None) -> None:
        marks = self._marks.get(attempt_id)
        if marks is None:
            if step != "requested":
                return  # started before this server knew it (e.g. adopted after a restart)
            marks = self._marks[attempt_id] = {}
            while len(self._marks) > self._capacity:
                self._marks.popitem(last=False)
        if step in marks:
            return
        marks[step] = time.monotonic() if at is None else at
        if step == "first_byte" and self.on_first_byte is not None:
            self.on_first_byte(marks[step] - marks["requested"])

    def of(self, attempt_id: uuid.UUID) -> dict[str, float]:
        """Seconds since the request for each step reached so far."""
        marks = self._marks.get(attempt_id, {})
        start = marks.get("requested")
        return {} if start is None else {step: marks[step] - start for step in STEPS if step in marks}

    def absolute(self, attempt_id: uuid.UUID) -> dict[str, float]:
        """The raw ``time.monotonic()`` marks (for an in-process client measuring from its own clock)."""
        return dict(self._marks.get(attempt_id, {}))
