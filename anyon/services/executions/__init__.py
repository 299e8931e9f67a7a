"""The execution engine: setup → coding agent → cleanup chains, shared by both deployment modes.

Owns attempts' starts, their processes (spawn, output, exit, commit), stops, follow-ups and cleanup;
``docs/architecture.md`` lists its parts. It may import every services package below it — ``db``,
``git``, ``logs``, ``team``, ``board``, ``agents``, ``runners``, ``normalizer``, ``protocols`` — and
none of them imports it back; nothing in it imports the API.

:class:`~anyon.services.executions.engine.ExecutionService` is the one face callers use. It is loaded on
first use rather than here, so the parts' ``from anyon.services.executions import actions`` does not
import the engine back (no import cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anyon.services.executions.engine import ExecutionService

__all__ = ["ExecutionService"]


def __getattr__(name: str) -> type[ExecutionService]:
    if name == "ExecutionService":
        from anyon.services.executions.engine import ExecutionService

        return ExecutionService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
