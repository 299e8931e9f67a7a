"""Where a message store's evicted messages go, so that a reader behind the memory window can replay them.

:class:`Spill` is what :class:`~anyon.services.logs.msgstore.MsgStore` needs; :class:`FileSpill` keeps the
evicted messages in an append-only JSONL file with a sparse seq → offset index, read back in batches off
the event loop. Kept apart from the store: the store's bounded window is about memory, this is about a file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from json.encoder import encode_basestring as _encode_str
from pathlib import Path
from typing import Final, Protocol

from anyon.services.logs.jsonpatch import dumps
from anyon.services.logs.logmsg import LogMsg, LogsEvicted


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
