"""Per-execution in-memory message store behind the live log streams.

One :class:`MsgStore` exists per running execution process. The producer (the runner's stdout/stderr pumps
and the log normaliser) pushes :class:`LogMsg` items; any number of readers (the raw-logs and normalized-logs
WebSockets, spec anyon-api.md §2.5, §2.6) each replay from the first message, then follow live, and end after
the ``finished`` marker.

Why this shape:

* **The producer never waits on a reader.** Messages live in one shared, append-only window; a reader is just
  a cursor into it. Pushing is O(1) whatever the number of readers (one shared wake-up future), and a slow
  reader costs no memory of its own: it simply reads further behind.
* **Memory is bounded** (architecture decision 5). The window holds at most ``byte_cap`` bytes (estimated:
  text length plus a fixed per-message overhead). Older messages are evicted; a reader whose cursor falls
  behind the window reads the evicted range back from the store's :class:`Spill`, an append-only record of
  everything evicted (:class:`FileSpill` writes it to a JSONL file). Without a spill, such a reader gets
  :class:`LogsEvicted` and the endpoint replays from the persisted process log instead (the same path it uses
  for a process that is no longer running).
* **Frames are serialised once.** Each message caches its WebSocket frame text, so fifty readers of the same
  line cost one ``json.dumps``. Stdout/stderr messages carry ``raw_index``, their position among the
  stdout/stderr messages, which is exactly the ``/entries/<n>`` a reader replaying from the start must use.

Threads: push from the event-loop thread. Code on another thread uses
``loop.call_soon_threadsafe(store.push_stdout, text)``.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator, Collection, Sequence
from json.encoder import encode_basestring as _encode_str
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from anyon.services.logs.jsonpatch import (
    FINISHED_FRAME,
    Op,
    dumps,
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


class Spill(Protocol):
    """Where evicted messages go so that a lagging reader can still replay them (the ``replay_source``)."""

    def append(self, msg: LogMsg) -> None: ...

    def read(self, start: int, stop: int) -> AsyncIterator[LogMsg]:
        """Messages with ``start <= seq < stop``, in order."""
        ...

    def close(self) -> None: ...


class FileSpill:
    """Append-only JSONL spill file; one line per evicted message, a sparse seq → offset index in memory."""

    INDEX_EVERY: Final = 1024
    READ_CHUNK: Final = 2000

    def __init__(self, path: str | Path, *, delete_on_close: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w+b")  # noqa: SIM115 - owned for the store's lifetime, closed in close()
        self._offsets: list[tuple[int, int]] = []  # (seq, byte offset) every INDEX_EVERY messages
        self._first: int | None = None
        self._next: int | None = None
        self._size = 0
        self._delete = delete_on_close

    def append(self, msg: LogMsg) -> None:
        if self._next is not None and msg.seq != self._next:
            raise ValueError(f"spill must be appended in order: expected seq {self._next}, got {msg.seq}")
        if self._first is None:
            self._first = msg.seq
        if (msg.seq - self._first) % self.INDEX_EVERY == 0:
            self._offsets.append((msg.seq, self._size))
        line = _spill_line(msg)
        self._file.write(line)
        self._size += len(line)
        self._next = msg.seq + 1

    async def read(self, start: int, stop: int) -> AsyncIterator[LogMsg]:
        if self._first is None or self._next is None or start >= stop:
            return
        if start < self._first or stop > self._next:
            raise LogsEvicted(start, self._first if start < self._first else self._next)
        self._file.flush()
        offset = 0
        for seq, off in self._offsets:
            if seq > start:
                break
            offset = off
        path = self.path
        while start < stop:
            batch, offset = await asyncio.to_thread(_read_lines, path, offset, start, stop, self.READ_CHUNK)
            if not batch:
                break
            for msg in batch:
                yield msg
            start = batch[-1].seq + 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._delete:
            self.path.unlink(missing_ok=True)


def _spill_line(msg: LogMsg) -> bytes:
    """``[seq,"kind",raw_index,payload]``: hand-built so that spilling a line costs one C string escape."""
    payload = dumps(msg.ops) if msg.kind == "json_patch" else _encode_str(msg.text)
    return f'[{msg.seq},"{msg.kind}",{msg.raw_index},{payload}]\n'.encode()


def _parse_spill_line(line: bytes) -> LogMsg:
    seq, kind, raw_index, payload = json.loads(line)
    if kind == "json_patch":
        return LogMsg(seq, kind, ops=payload)
    return LogMsg(seq, kind, text=payload, raw_index=raw_index)


def _read_lines(path: Path, offset: int, start: int, stop: int, limit: int) -> tuple[list[LogMsg], int]:
    out: list[LogMsg] = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        while len(out) < limit:
            line = fh.readline()
            if not line:
                break
            offset += len(line)
            msg = _parse_spill_line(line)
            if msg.seq >= stop:
                break
            if msg.seq >= start:
                out.append(msg)
    return out, offset


class MsgStore:
    """Append-only log of one execution with replay-then-live readers; see the module docstring."""

    def __init__(self, *, byte_cap: int = 4 * 1024 * 1024, spill: Spill | None = None) -> None:
        if byte_cap < 1:
            raise ValueError("byte_cap must be positive")
        self.byte_cap = byte_cap
        self._spill = spill
        # the window is _buf[_head:]; evicting advances _head, compaction happens in bulk (O(1) amortised)
        self._buf: list[LogMsg] = []
        self._head = 0
        self._next_seq = 0
        self._next_raw = 0
        self._bytes = 0
        self._changed: asyncio.Future[None] | None = None
        self._finished = False
        self._closed = False
        self.session_id: str | None = None

    # --- producer side -------------------------------------------------------------------------------

    def push_stdout(self, text: str) -> LogMsg:
        return self._push("stdout", text=text)

    def push_stderr(self, text: str) -> LogMsg:
        return self._push("stderr", text=text)

    def push_patch(self, ops: Sequence[Op]) -> LogMsg:
        return self._push("json_patch", ops=ops)

    def push_session_id(self, session_id: str) -> LogMsg:
        self.session_id = session_id
        return self._push("session_id", text=session_id)

    def finish(self) -> None:
        """Push the ``finished`` marker (idempotent); readers end after it."""
        if not self._finished:
            self._push("finished")
            self._finished = True

    def _push(self, kind: LogKind, *, text: str = "", ops: Sequence[Op] | None = None) -> LogMsg:
        if self._finished:
            raise RuntimeError("the execution's log is finished; nothing can be appended")
        raw_index = -1
        if kind in RAW_KINDS:
            raw_index = self._next_raw
            self._next_raw += 1
        msg = LogMsg(self._next_seq, kind, text=text, ops=ops, raw_index=raw_index)
        self._next_seq += 1
        self._buf.append(msg)
        self._bytes += msg.size
        while self._bytes > self.byte_cap and len(self._buf) - self._head > 1:
            old = self._buf[self._head]
            self._head += 1
            self._bytes -= old.size
            if self._spill is not None:
                self._spill.append(old)
        # compact once evicted messages outnumber the window: each compaction drops at least half the list
        # (amortised O(1)), and evicted messages never pile up (they used to, by thousands of 64 KiB chunks)
        if self._head > 32 and self._head * 2 > len(self._buf):
            del self._buf[: self._head]
            self._head = 0
        if self._changed is not None:
            self._changed.set_result(None)
            self._changed = None
        return msg

    # --- state ---------------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def window_start(self) -> int:
        """The seq of the oldest message still in memory."""
        return self._next_seq - (len(self._buf) - self._head)

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def next_raw_index(self) -> int:
        """The ``raw_index`` the next stdout/stderr message will get (= how many were pushed)."""
        return self._next_raw

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        """Release the spill; an unfinished log is finished first so that no reader waits forever.

        Readers still attached get :class:`LogsEvicted` for evicted ranges.
        """
        if not self._finished:
            self.finish()
        self._closed = True
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    # --- reader side ---------------------------------------------------------------------------------

    def subscribe(self, *, kinds: Collection[LogKind] | None = None, from_seq: int = 0) -> LogReader:
        """A reader replaying from ``from_seq`` (default: the very start), then following live.

        ``kinds`` limits what is yielded (e.g. ``{"stdout", "stderr"}`` for the raw-logs stream); the
        ``finished`` marker is always yielded, and ends the iteration.
        """
        return LogReader(self, kinds, from_seq)

    async def _wait(self) -> None:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._changed)


class LogReader:
    """Async iterator over a store's messages; :meth:`next_batch` gives several at once for cheap sending."""

    def __init__(self, store: MsgStore, kinds: Collection[LogKind] | None, from_seq: int) -> None:
        if kinds is not None:
            unknown = set(kinds) - set(LOG_KINDS)
            if unknown:
                raise ValueError(f"unknown log kinds: {sorted(unknown)}")
        self._store = store
        self._kinds = None if kinds is None else frozenset(kinds) | {"finished"}
        self._cursor = max(0, from_seq)
        self._pending: collections.deque[LogMsg] = collections.deque()
        self._done = False

    @property
    def cursor(self) -> int:
        """The seq of the next message this reader will look at."""
        return self._cursor

    def __aiter__(self) -> AsyncIterator[LogMsg]:
        return self

    async def __anext__(self) -> LogMsg:
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            await self._fill(max_items=1024)
        msg = self._pending.popleft()
        if msg.kind == "finished":
            self._done = True
            self._pending.clear()
        return msg

    async def next_batch(self, max_items: int = 1024) -> list[LogMsg]:
        """Up to ``max_items`` messages, waiting for at least one; ``[]`` once ``finished`` was returned."""
        out: list[LogMsg] = []
        while not out:
            while self._pending and len(out) < max_items:
                msg = self._pending.popleft()
                out.append(msg)
                if msg.kind == "finished":
                    self._done = True
                    self._pending.clear()
                    return out
            if out or self._done:
                return out
            await self._fill(max_items=max_items)
        return out

    def _accept(self, msg: LogMsg) -> bool:
        return self._kinds is None or msg.kind in self._kinds

    async def _fill(self, *, max_items: int) -> None:
        store = self._store
        if self._cursor < store.window_start:
            spill = store._spill
            stop = store.window_start
            if spill is None:
                raise LogsEvicted(self._cursor, stop)
            async for msg in spill.read(self._cursor, stop):
                if self._accept(msg):
                    self._pending.append(msg)
                self._cursor = msg.seq + 1
                if len(self._pending) >= max_items:
                    return
            self._cursor = max(self._cursor, stop)
            return
        if self._cursor < store.next_seq:
            buf, head = store._buf, store._head
            i = head + (self._cursor - store.window_start)
            end = min(len(buf), i + max_items * 4)
            if self._kinds is None:
                self._pending.extend(buf[i:end])
            else:
                self._pending.extend(m for m in buf[i:end] if m.kind in self._kinds)
            self._cursor += end - i
            return
        await store._wait()


__all__ = [
    "LOG_KINDS",
    "RAW_KINDS",
    "FileSpill",
    "LogKind",
    "LogMsg",
    "LogReader",
    "LogsEvicted",
    "MsgStore",
    "Spill",
]
