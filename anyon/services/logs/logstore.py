"""Execution logs, stored append-only as numbered chunk rows (spec §8: logs are never rewritten).

The reference kept one row per process and rewrote it, concatenated, for every chunk: O(n²) disk writes and
"database is locked" under load. Here each chunk is its own ``execution_process_logs`` row with a
per-execution ``seq`` (1, 2, 3 …). Readers page with ``read(execution_id, after_seq)``; a row, once written,
is never updated.

Ordering: ``seq`` is handed out under a per-execution lock held until the insert commits, so a reader that
has seen ``seq = n`` will never later find a row ``< n`` appear (no gaps that fill in behind a cursor). The
unique index (execution_id, seq) backs this up against a second writer process.

Retention (``retention.log_days``, ``retention.log_total_bytes``) deletes whole logs of ended processes,
never single chunks and never the log of a running process: see :meth:`LogStore.prune`.

Text that a database cannot hold is made storable first: NUL characters (refused by PostgreSQL text) and
lone surrogates become U+FFFD, identically on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import peewee as pw

from anyon.services.db.columns import LOG_KINDS, utc_now
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess, ExecutionProcessLog

# Rows per INSERT: 6 bound values each stays far below SQLite's 32766-variable limit.
_BATCH = 500


@dataclass(frozen=True)
class LogChunk:
    """One stored chunk of a process's output."""

    seq: int
    kind: str
    content: str
    byte_size: int
    inserted_at: dt.datetime


class LogStoreError(ValueError):
    """An append was refused (unknown kind, non-text content, unknown execution)."""


def _storable(content: str) -> str:
    if "\x00" in content:
        content = content.replace("\x00", "\ufffd")
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        content = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in content)
    return content


def _as_utc(value: Any) -> dt.datetime:
    """A timestamp as an aware datetime (SQLite gives naive UTC), for ordering."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _as_uuid(execution_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(execution_id, uuid.UUID):
        return execution_id
    try:
        return uuid.UUID(str(execution_id))
    except ValueError as exc:
        raise LogStoreError(f"execution id {execution_id!r} is not a UUID") from exc


class LogStore:
    """Append and read execution log chunks of one :class:`Database` (thread-safe)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._guard = threading.Lock()
        self._locks: dict[uuid.UUID, threading.Lock] = {}
        self._next_seq: dict[uuid.UUID, int] = {}

    def _lock_for(self, execution_id: uuid.UUID) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(execution_id)
            if lock is None:
                lock = self._locks[execution_id] = threading.Lock()
            return lock

    def _load_next_seq(self, execution_id: uuid.UUID) -> int:
        top = (
            ExecutionProcessLog.select(pw.fn.MAX(ExecutionProcessLog.seq))
            .where(ExecutionProcessLog.execution == execution_id)
            .scalar()
        )
        return int(top or 0) + 1

    # --- writing -----------------------------------------------------------------------------------

    def append(self, execution_id: uuid.UUID | str, kind: str, content: str) -> int:
        """Append one chunk; return its ``seq``."""
        return self.append_many(execution_id, [(kind, content)])[-1]

    def append_many(self, execution_id: uuid.UUID | str, chunks: Iterable[tuple[str, str]]) -> list[int]:
        """Append ``(kind, content)`` chunks in order, in one transaction; return their seqs.

        All or nothing: a refused chunk (unknown kind, non-text content) fails the whole call before any
        row is written. An empty iterable writes nothing and returns ``[]``.
        """
        eid = _as_uuid(execution_id)
        prepared: list[tuple[str, str, int]] = []
        for kind, content in chunks:
            if kind not in LOG_KINDS:
                raise LogStoreError(f"unknown log kind {kind!r}; expected one of {', '.join(LOG_KINDS)}")
            if not isinstance(content, str):
                raise LogStoreError(f"log content must be text, got {type(content).__name__}")
            text = _storable(content)
            prepared.append((kind, text, len(text.encode("utf-8"))))
        if not prepared:
            return []
        with self._lock_for(eid):
            for attempt in (1, 2):
                start = self._next_seq.get(eid) or self._load_next_seq(eid)
                now = utc_now()
                rows = [
                    {
                        "execution": eid,
                        "seq": start + i,
                        "kind": kind,
                        "content": text,
                        "byte_size": size,
                        "inserted_at": now,
                    }
                    for i, (kind, text, size) in enumerate(prepared)
                ]
                try:
                    with self.database.atomic():
                        for i in range(0, len(rows), _BATCH):
                            ExecutionProcessLog.insert_many(rows[i : i + _BATCH]).execute()
                except pw.IntegrityError as exc:
                    self._next_seq.pop(eid, None)
                    if attempt == 2 or not self._seq_taken(eid, start):
                        raise LogStoreError(f"cannot append logs of execution {eid}: {exc}") from exc
                    continue  # another writer took these seqs: reload the counter and retry once
                self._next_seq[eid] = start + len(rows)
                return [start + i for i in range(len(rows))]
        raise AssertionError("unreachable")

    def _seq_taken(self, execution_id: uuid.UUID, seq: int) -> bool:
        return bool(
            ExecutionProcessLog.select(pw.SQL("1"))
            .where((ExecutionProcessLog.execution == execution_id) & (ExecutionProcessLog.seq == seq))
            .exists()
        )

    def forget(self, execution_id: uuid.UUID | str) -> None:
        """Drop the cached counter of a finished execution (keeps memory bounded on long-lived servers)."""
        eid = _as_uuid(execution_id)
        with self._guard:
            self._locks.pop(eid, None)
            self._next_seq.pop(eid, None)

    # --- retention ---------------------------------------------------------------------------------

    def prune(self, *, ended_before: dt.datetime | None, max_total_bytes: int | None) -> list[uuid.UUID]:
        """Delete the logs of ended processes; return the executions whose logs were deleted.

        First every log of a process that ended before ``ended_before``; then, while all stored logs
        together exceed ``max_total_bytes``, the logs of the processes that ended first. A process still
        ``running`` keeps its log whatever its age or size. Each log goes in its own transaction, so a
        large prune never holds the write lock for long.
        """
        ended = ExecutionProcess.status != "running"
        victims: list[Any] = []
        if ended_before is not None:
            done, changed = ExecutionProcess.completed_at, ExecutionProcess.updated_at
            has_log = pw.fn.EXISTS(
                ExecutionProcessLog.select(pw.SQL("1")).where(
                    ExecutionProcessLog.execution == ExecutionProcess.id
                )
            )
            old: Any = (
                ExecutionProcess.select(ExecutionProcess.id)
                .where(
                    ended & ((done < ended_before) | (done.is_null() & (changed < ended_before))) & has_log
                )
                .tuples()
            )
            victims = [row[0] for row in old]
        if max_total_bytes is not None:
            doomed = set(victims)
            sizes: Any = (
                ExecutionProcessLog.select(
                    ExecutionProcessLog.execution,
                    pw.fn.SUM(ExecutionProcessLog.byte_size),
                    ExecutionProcess.status,
                    ExecutionProcess.completed_at,
                    ExecutionProcess.updated_at,
                )
                .join(ExecutionProcess, on=(ExecutionProcessLog.execution == ExecutionProcess.id))
                .group_by(
                    ExecutionProcessLog.execution,
                    ExecutionProcess.status,
                    ExecutionProcess.completed_at,
                    ExecutionProcess.updated_at,
                )
                .tuples()
            )
            rows = [
                (eid, int(size or 0), status, done or changed) for eid, size, status, done, changed in sizes
            ]
            total = sum(size for eid, size, _, _ in rows if eid not in doomed)
            oldest_first = sorted(
                (r for r in rows if r[2] != "running" and r[0] not in doomed), key=lambda r: _as_utc(r[3])
            )
            for eid, size, _status, _ended in oldest_first:
                if total <= max_total_bytes:
                    break
                victims.append(eid)
                total -= size
        for eid in victims:
            with self.database.atomic():
                ExecutionProcessLog.delete().where(ExecutionProcessLog.execution == eid).execute()
            self.forget(eid)
        return [_as_uuid(eid) for eid in victims]

    # --- reading -----------------------------------------------------------------------------------

    def read(
        self, execution_id: uuid.UUID | str, after_seq: int = 0, limit: int | None = None
    ) -> list[LogChunk]:
        """The chunks with ``seq > after_seq``, in order (at most ``limit`` of them when given)."""
        eid = _as_uuid(execution_id)
        query = (
            ExecutionProcessLog.select(
                ExecutionProcessLog.seq,
                ExecutionProcessLog.kind,
                ExecutionProcessLog.content,
                ExecutionProcessLog.byte_size,
                ExecutionProcessLog.inserted_at,
            )
            .where((ExecutionProcessLog.execution == eid) & (ExecutionProcessLog.seq > after_seq))
            .order_by(ExecutionProcessLog.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        rows: Any = query.tuples()  # plain tuples: no per-row model objects
        return [LogChunk(*row) for row in rows]

    def total_bytes(self, execution_id: uuid.UUID | str) -> int:
        """The UTF-8 size of everything stored for the execution."""
        eid = _as_uuid(execution_id)
        total = (
            ExecutionProcessLog.select(pw.fn.SUM(ExecutionProcessLog.byte_size))
            .where(ExecutionProcessLog.execution == eid)
            .scalar()
        )
        return int(total or 0)

    def last_seq(self, execution_id: uuid.UUID | str) -> int:
        """The highest stored ``seq`` (0 when there are no chunks)."""
        return self._load_next_seq(_as_uuid(execution_id)) - 1

    def has_logs(self, execution_id: uuid.UUID | str) -> bool:
        """Whether any chunk is stored (the log streams answer 404 when not and the process is not live)."""
        eid = _as_uuid(execution_id)
        return bool(
            ExecutionProcessLog.select(pw.SQL("1")).where(ExecutionProcessLog.execution == eid).exists()
        )
