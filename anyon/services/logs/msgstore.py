"""Per-execution in-memory message store behind the live log streams.

One :class:`MsgStore` exists per running execution process. The producer (the runner's stdout/stderr pumps
and the log normaliser) pushes :class:`~.logmsg.LogMsg` items; any number of readers (the raw-logs and
normalized-logs WebSockets, spec anyon-api.md §2.5, §2.6) each replay from the first message, then follow
live, and end after the ``finished`` marker. The message (``logmsg``) and the spill file (``spill``) are
modules of their own.

Why this shape:

* **The producer never waits on a reader.** Messages live in one shared, append-only window; a reader is just
  a cursor into it. Pushing is O(1) whatever the number of readers (one shared wake-up future), and a slow
  reader costs no memory of its own: it simply reads further behind.
* **Memory is bounded** (architecture decision 5). The window holds at most ``byte_cap`` bytes (estimated:
  text length plus a fixed per-message overhead). Older messages are evicted; a reader whose cursor falls
  behind the window reads the evicted range back from the store's :class:`~.spill.Spill`, an append-only
  record of everything evicted (:class:`~.spill.FileSpill` writes it to a JSONL file). Without a spill, such
  a reader gets :class:`~.logmsg.LogsEvicted` and the endpoint replays from the persisted process log
  instead (the same path it uses for a process that is no longer running).
* **Frames are serialised once.** Each message caches its WebSocket frame text, so fifty readers of the same
  line cost one ``json.dumps``. Stdout/stderr messages carry ``raw_index``, their position among the
  stdout/stderr messages, which is exactly the ``/entries/<n>`` a reader replaying from the start must use.

Threads: push from the event-loop thread. Code on another thread uses
``loop.call_soon_threadsafe(store.push_stdout, text)``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Collection, Sequence

from anyon.services.logs.jsonpatch import Op
from anyon.services.logs.logmsg import LOG_KINDS, RAW_KINDS, LogKind, LogMsg, LogsEvicted
from anyon.services.logs.spill import Spill


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


__all__ = ["LogReader", "MsgStore"]
