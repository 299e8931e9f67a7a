"""Log streams of one execution process: raw stdout/stderr (spec §2.5) and normalized entries (§2.6).

Sources. A live process has a :class:`~anyon.services.logs.msgstore.MsgStore` (``executions.store_for``): the
stream replays it from the start, follows it, and ends with ``{"finished":true}``. A process that is no
longer live is replayed from the append-only log store (raw chunks as they were; normalized entries by
running the executor's normaliser over them again), then ``finished``.

Backpressure. A log reader is only a cursor into the store's shared window, so a slow client costs no
memory of its own: it just reads further behind, and the producer never waits for it. If it falls so far
behind that its position was evicted from the window (the window is byte-capped), the stream catches up
from the persisted log (raw: the chunks it has not sent; normalized: one ``replace /entries`` rebuilt by
the normaliser) and continues live from the window. Frames are batched: everything a reader has waiting is
sent as one ``{"JsonPatch":[…]}`` frame, which is what keeps fifty followers of a chatty process cheap.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

import falcon.asgi

from anyon.api.http import run_sync
from anyon.api.streams.ws import StreamSender, deny, serve
from anyon.services.container import Services
from anyon.services.db.models import ExecutionProcess
from anyon.services.errors import NotFound
from anyon.services.logs import jsonpatch as jp
from anyon.services.logs.logmsg import RAW_KINDS, LogMsg, LogsEvicted
from anyon.services.logs.logstore import LogChunk
from anyon.services.logs.msgstore import MsgStore
from anyon.services.memory import release_memory
from anyon.services.normalizer import LogNormalizer, normalizer_for

PAGE: Final = 2000
"""Stored chunks read per query while replaying a finished process."""
HISTORIC_PAGE: Final = 64
"""Stored chunks (at most 64 KiB each) normalised and sent at a time when a finished process is replayed."""
OPS_PER_FRAME: Final = 1000
STORE_APPEAR_SECONDS: Final = 2.0
"""A process row is inserted just before its store is registered; a stream opened in between waits."""
CATCH_UP_WAIT_SECONDS: Final = 5.0
"""How long a lagging reader waits for evicted chunks to be flushed to the log store."""


class _Gap(Exception):
    """The in-memory window starts after what the client has: catch up from the persisted log first."""


class _LogStream:
    def __init__(self, services: Services) -> None:
        self._services = services

    def _store(self, process_id: uuid.UUID) -> MsgStore | None:
        return self._services.executions.store_for(process_id)

    def _read(self, process_id: uuid.UUID, after_seq: int, limit: int = PAGE) -> list[LogChunk]:
        with self._services.database.connection():
            return self._services.logstore.read(process_id, after_seq, limit)

    def _has_logs(self, process_id: uuid.UUID) -> bool:
        with self._services.database.connection():
            return self._services.logstore.has_logs(process_id)

    async def _open(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, process_id: str
    ) -> tuple[uuid.UUID, ExecutionProcess, str | None, MsgStore | None] | None:
        """The process and its live store, or ``None`` after refusing the upgrade (400/404)."""
        try:
            pid = uuid.UUID(process_id)
        except ValueError:
            await deny(req, ws, 400, f"BadRequest: process id is not a valid UUID: {process_id!r}")
            return None
        try:
            row, worktree = await run_sync(self._services.processes.get_row_and_worktree, pid)
        except NotFound as exc:
            await deny(req, ws, 404, exc.message)
            return None
        store = self._store(pid)
        if store is None and row.status == "running":
            deadline = asyncio.get_running_loop().time() + STORE_APPEAR_SECONDS
            while store is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
                store = self._store(pid)
        if store is None and not await run_sync(self._has_logs, pid):
            await deny(req, ws, 404, f"No logs for execution process {pid}")
            return None
        return pid, row, worktree, store


class RawLogsStream(_LogStream):
    """``GET /api/execution-processes/{id}/raw-logs/ws``: ``add /entries/<n>`` STDOUT/STDERR, finished."""

    async def on_websocket(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, process_id: str
    ) -> None:
        opened = await self._open(req, ws, process_id)
        if opened is None:
            return
        pid, _row, _worktree, store = opened
        try:
            if store is None:
                await serve(ws, lambda sender: self._historic(sender, pid))
            else:
                await serve(ws, lambda sender: self._live(sender, pid, store))
        finally:
            await run_sync(release_memory)

    async def _historic(self, sender: StreamSender, pid: uuid.UUID) -> None:
        cursor = _Cursor()
        while await self._catch_up(sender, pid, cursor, target=None):
            pass
        await sender.finished()

    async def _catch_up(
        self, sender: StreamSender, pid: uuid.UUID, cursor: _Cursor, target: int | None
    ) -> bool:
        """Send stored chunks the client lacks (up to raw index ``target``); False when none were left."""
        chunks = await run_sync(self._read, pid, cursor.db_seq)
        if not chunks:
            return False
        ops: list[jp.Op] = []
        for chunk in chunks:
            if target is not None and cursor.sent >= target:
                break  # before consuming the chunk: the next catch-up must still see it
            cursor.db_seq = chunk.seq
            if chunk.kind not in RAW_KINDS:
                continue
            cursor.db_raw += 1
            if cursor.db_raw <= cursor.sent:
                continue  # already sent from memory
            value = (
                jp.stdout_value(chunk.content) if chunk.kind == "stdout" else jp.stderr_value(chunk.content)
            )
            ops.append(jp.entry_add(cursor.sent, value))
            cursor.sent += 1
            if len(ops) >= OPS_PER_FRAME:
                await sender.ops(ops)
                ops = []
        await sender.ops(ops)
        return True

    async def _live(self, sender: StreamSender, pid: uuid.UUID, store: MsgStore) -> None:
        cursor = _Cursor()
        from_seq = 0
        while True:
            reader = store.subscribe(kinds=RAW_KINDS, from_seq=from_seq)
            try:
                while True:
                    batch = await reader.next_batch()
                    if not batch:
                        return
                    frames: list[str] = []
                    for msg in batch:
                        if msg.kind == "finished":
                            await sender.patch_frames(frames)
                            await sender.finished()
                            return
                        if msg.raw_index < cursor.sent:
                            continue
                        if msg.raw_index > cursor.sent:
                            await sender.patch_frames(frames)
                            raise _Gap
                        frames.append(msg.ws_frame())
                        cursor.sent += 1
                    await sender.patch_frames(frames)
            except (LogsEvicted, _Gap):
                # behind the memory window: the evicted chunks are (or soon will be) in the log store
                from_seq = store.window_start
                deadline = asyncio.get_running_loop().time() + CATCH_UP_WAIT_SECONDS
                # the raw entries before the window are (or soon will be) stored: send them from there
                first = await _first_raw_index(store, from_seq)
                while cursor.sent < first:
                    if not await self._catch_up(sender, pid, cursor, target=first):
                        if asyncio.get_running_loop().time() > deadline:
                            missing = f"log chunks of {pid} before {first} never reached the log store"
                            raise RuntimeError(missing) from None
                        await asyncio.sleep(0.05)


class _Cursor:
    __slots__ = ("db_raw", "db_seq", "sent")

    def __init__(self) -> None:
        self.sent = 0  # entries sent to the client (= the next /entries/<n>)
        self.db_seq = 0  # last stored chunk seq read
        self.db_raw = 0  # stdout/stderr chunks seen in the store so far


async def _first_raw_index(store: MsgStore, from_seq: int) -> int:
    """The raw index of the first stdout/stderr message at or after ``from_seq`` still in memory.

    With none there (only patches, or only the end marker: one big patch can fill the whole window), the
    raw index the next one will get: every raw chunk before it is in, or on its way to, the log store.
    """
    if store.next_seq <= from_seq:
        return store.next_raw_index
    reader = store.subscribe(from_seq=from_seq)
    try:
        batch = await reader.next_batch(4096)
    except LogsEvicted:
        return await _first_raw_index(store, store.window_start)
    for msg in batch:
        if msg.kind in RAW_KINDS:
            return msg.raw_index
    return store.next_raw_index


def _executor_of(action: Any) -> str:
    """The canonical executor of a coding-agent action; scripts get plain-text normalisation."""
    try:
        typ = action["typ"]
        if typ.get("type") != "ScriptRequest":
            return str(typ["executor_profile_id"]["executor"])
    except (KeyError, TypeError, AttributeError):
        pass
    return "SCRIPT"


def _feed(normalizer: LogNormalizer, records: list[tuple[str, str]]) -> list[jp.Op]:
    ops: list[jp.Op] = []
    for stream, chunk in records:
        ops += normalizer.feed_stdout(chunk) if stream == "stdout" else normalizer.feed_stderr(chunk)
    return ops


def _entries_value(normalizer: LogNormalizer) -> list[dict[str, Any]]:
    return [jp.normalized_entry_value(e) for e in normalizer.entries]


class NormalizedLogsStream(_LogStream):
    """``GET /api/execution-processes/{id}/normalized-logs/ws``: NormalizedEntry patches, then finished."""

    async def on_websocket(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, process_id: str
    ) -> None:
        opened = await self._open(req, ws, process_id)
        if opened is None:
            return
        pid, row, worktree, store = opened
        executor = _executor_of(row.executor_action)
        try:
            if store is None:
                await serve(ws, lambda sender: self._historic(sender, pid, executor, worktree))
            else:
                await serve(ws, lambda sender: self._live(sender, pid, store, executor, worktree))
        finally:
            await run_sync(release_memory)  # a replay held a whole stored log: return what it freed

    async def _records(self, pid: uuid.UUID, upto_raw: int | None = None) -> list[tuple[str, str]]:
        records: list[tuple[str, str]] = []
        seq = 0
        while upto_raw is None or len(records) < upto_raw:
            chunks = await run_sync(self._read, pid, seq)
            if not chunks:
                break
            for chunk in chunks:
                seq = chunk.seq
                if chunk.kind in RAW_KINDS:
                    records.append((chunk.kind, chunk.content))
                    if upto_raw is not None and len(records) >= upto_raw:
                        break
        return records

    async def _historic(
        self, sender: StreamSender, pid: uuid.UUID, executor: str, worktree: str | None
    ) -> None:
        # page by page through a live-mode normaliser (the same ops, without keeping every entry): memory
        # stays bounded by a page, not by the whole conversation
        normalizer = normalizer_for(executor, worktree=worktree, keep_entries=False)
        seq = 0
        while True:
            chunks = await run_sync(self._read, pid, seq, HISTORIC_PAGE)
            if not chunks:
                break
            seq = chunks[-1].seq
            records = [(c.kind, c.content) for c in chunks if c.kind in RAW_KINDS]
            await self._send_ops(sender, await run_sync(_feed, normalizer, records))
        await self._send_ops(sender, normalizer.finish())
        await sender.finished()

    @staticmethod
    async def _send_ops(sender: StreamSender, ops: list[jp.Op]) -> None:
        for i in range(0, len(ops), OPS_PER_FRAME):
            await sender.ops(ops[i : i + OPS_PER_FRAME])

    async def _live(
        self, sender: StreamSender, pid: uuid.UUID, store: MsgStore, executor: str, worktree: str | None
    ) -> None:
        from_seq = 0
        while True:
            reader = store.subscribe(kinds={"json_patch"}, from_seq=from_seq)
            try:
                while True:
                    batch = await reader.next_batch()
                    if not batch:
                        return
                    frames = [m.ws_frame() for m in batch if m.kind == "json_patch"]
                    await sender.patch_frames(frames)
                    if batch[-1].kind == "finished":
                        await sender.finished()
                        return
            except LogsEvicted:
                resume = await self._rebuild(sender, pid, store, executor, worktree)
                if resume is None:
                    await sender.finished()
                    return
                from_seq = resume

    async def _rebuild(
        self, sender: StreamSender, pid: uuid.UUID, store: MsgStore, executor: str, worktree: str | None
    ) -> int | None:
        """The client fell behind the window: rebuild ``/entries`` from the stored log, resume after it.

        The live normaliser turned raw chunk ``k`` into the patches that follow it in the store, so a fresh
        normaliser fed chunks ``0..r-1`` holds the same entries the live one had when chunk ``r`` (the first
        raw chunk still in memory) arrived; the stream resumes at that chunk's seq. ``None``: the process
        ended and the whole stored log was sent.
        """
        while True:
            start = store.window_start
            reader = store.subscribe(from_seq=start)
            try:
                batch: list[LogMsg] = await reader.next_batch(4096)
            except LogsEvicted:
                continue
            first = next((m for m in batch if m.kind in RAW_KINDS), None)
            if first is None:
                # nothing but patches in memory: the process is ending; the full stored log is the answer
                deadline = asyncio.get_running_loop().time() + CATCH_UP_WAIT_SECONDS
                while not store.finished and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.05)
                normalizer = normalizer_for(executor, worktree=worktree)
                await run_sync(normalizer.replay, await self._records(pid))
                await sender.ops([jp.replace("/entries", _entries_value(normalizer))])
                return None
            deadline = asyncio.get_running_loop().time() + CATCH_UP_WAIT_SECONDS
            records = await self._records(pid, first.raw_index)
            while len(records) < first.raw_index and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
                records = await self._records(pid, first.raw_index)
            normalizer = normalizer_for(executor, worktree=worktree)

            def feed(n: LogNormalizer = normalizer, rs: list[tuple[str, str]] = records) -> None:
                for stream, chunk in rs:
                    if stream == "stdout":
                        n.feed_stdout(chunk)
                    else:
                        n.feed_stderr(chunk)

            await run_sync(feed)
            await sender.ops([jp.replace("/entries", _entries_value(normalizer))])
            return first.seq
