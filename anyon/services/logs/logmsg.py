"""One message of an execution's log and its wire forms: the WebSocket frame, the spec's JSON, the kinds.

Shared by the in-memory store (``msgstore``), its spill file (``spill``) and the log streams of the API,
which all handle messages but need none of each other's machinery. A message caches its WebSocket frame,
so fifty readers of the same line cost one ``json.dumps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

from anyon.services.logs.jsonpatch import (
    FINISHED_FRAME,
    Op,
    entry_add,
    patch_frame,
    stderr_value,
    stdout_value,
)

LogKind = Literal["stdout", "stderr", "json_patch", "session_id", "finished"]
LOG_KINDS: Final[tuple[LogKind, ...]] = ("stdout", "stderr", "json_patch", "session_id", "finished")
RAW_KINDS: Final[frozenset[LogKind]] = frozenset({"stdout", "stderr"})

MESSAGE_OVERHEAD_BYTES: Final = 128
"""Estimated Python object overhead per message, added to its text length in the memory accounting."""


class LogMsg:
    """One message of an execution's log: a stdout/stderr chunk, a JSON patch, the session id, or the end."""

    __slots__ = ("_frame", "kind", "ops", "raw_index", "seq", "size", "text")

    def __init__(
        self, seq: int, kind: LogKind, *, text: str = "", ops: Sequence[Op] | None = None, raw_index: int = -1
    ) -> None:
        self.seq = seq
        self.kind = kind
        self.text = text
        self.ops: list[Op] | None = list(ops) if ops is not None else None
        self.raw_index = raw_index
        self._frame: str | None = None
        # estimated memory footprint, fixed at creation (used twice: on append and on eviction)
        self.size = MESSAGE_OVERHEAD_BYTES + (len(self.ws_frame()) if kind == "json_patch" else len(text))

    def ws_frame(self) -> str:
        """The WebSocket text frame for this message (computed once, shared by all readers).

        stdout/stderr become ``add /entries/<raw_index>`` with a STDOUT/STDERR value (spec §2.5); a patch is
        ``{"JsonPatch":[...]}``; the end is ``{"finished":true}``. Session ids are never sent on a socket.
        """
        if self._frame is None:
            if self.kind == "json_patch":
                self._frame = patch_frame(self.ops or [])
            elif self.kind in RAW_KINDS:
                value = stdout_value(self.text) if self.kind == "stdout" else stderr_value(self.text)
                self._frame = patch_frame([entry_add(self.raw_index, value)])
            elif self.kind == "finished":
                self._frame = FINISHED_FRAME
            else:
                raise ValueError(f"{self.kind} messages are not sent on WebSockets")
        return self._frame

    def to_json(self) -> dict[str, Any]:
        """The spec's external LogMsg form (``{"Stdout":…}``, ``{"JsonPatch":[…]}``, …) plus ``seq``."""
        tag = {"stdout": "Stdout", "stderr": "Stderr", "json_patch": "JsonPatch", "session_id": "SessionId"}
        if self.kind == "finished":
            return {"seq": self.seq, "finished": True}
        payload: Any = self.ops if self.kind == "json_patch" else self.text
        out: dict[str, Any] = {"seq": self.seq, tag[self.kind]: payload}
        if self.raw_index >= 0:
            out["raw_index"] = self.raw_index
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogMsg:
        seq = int(data["seq"])
        raw_index = int(data.get("raw_index", -1))
        if data.get("finished"):
            return cls(seq, "finished")
        if "JsonPatch" in data:
            return cls(seq, "json_patch", ops=data["JsonPatch"])
        for tag, kind in (("Stdout", "stdout"), ("Stderr", "stderr"), ("SessionId", "session_id")):
            if tag in data:
                return cls(seq, kind, text=str(data[tag]), raw_index=raw_index)  # type: ignore[arg-type]
        raise ValueError(f"not a log message: {data!r}")

    def __repr__(self) -> str:
        return f"LogMsg(seq={self.seq}, kind={self.kind!r}, raw_index={self.raw_index})"


class LogsEvicted(Exception):
    """The reader is behind the memory window and the store has no spill: replay from the persisted log."""

    def __init__(self, cursor: int, window_start: int) -> None:
        super().__init__(
            f"messages {cursor}..{window_start - 1} are no longer in memory; replay from the persisted log"
        )
        self.cursor = cursor
        self.window_start = window_start
