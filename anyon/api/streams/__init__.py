"""The live streams of spec §2: WebSocket JSON-Patch streams and the SSE event bus."""

from anyon.api.streams.diff import DiffStream
from anyon.api.streams.logs import NormalizedLogsStream, RawLogsStream
from anyon.api.streams.sse import EventsSse
from anyon.api.streams.state import DraftsStream, ProcessesStream, TasksStream

__all__ = [
    "DiffStream",
    "DraftsStream",
    "EventsSse",
    "NormalizedLogsStream",
    "ProcessesStream",
    "RawLogsStream",
    "TasksStream",
]
