"""The log store appends chunk rows and never rewrites them (spec §8)."""

from __future__ import annotations

import threading
import uuid

import pytest
import test_db_support
from test_db_support import make_chain

from anyon.services.db import Database
from anyon.services.db.models import ExecutionProcess, ExecutionProcessLog
from anyon.services.logs.logstore import LogChunk, LogStore, LogStoreError

# fixtures shared by every DB test module (SQLite and PostgreSQL)
database = test_db_support.database
migrated = test_db_support.migrated


def _rows(execution_id: uuid.UUID) -> list[tuple[int, int, str, str, int, str]]:
    """Every stored row of an execution, raw, in storage order."""
    query = (
        ExecutionProcessLog.select()
        .where(ExecutionProcessLog.execution == execution_id)
        .order_by(ExecutionProcessLog.id)
    )
    return [(r.id, r.seq, r.kind, r.content, r.byte_size, r.inserted_at.isoformat()) for r in query]


def test_append_and_read_in_order(migrated: Database) -> None:
    *_, proc = make_chain()
    store = LogStore(migrated)
    assert store.read(proc.id) == []
    assert store.last_seq(proc.id) == 0
    assert not store.has_logs(proc.id)
    assert store.append(proc.id, "stdout", "hello ") == 1
    assert store.append(str(proc.id), "stderr", "oops\n") == 2
    assert store.append_many(proc.id, [("stdout", "world\n"), ("normalized", '{"op":"add"}')]) == [3, 4]
    assert store.append_many(proc.id, []) == []
    chunks = store.read(proc.id)
    assert [(c.seq, c.kind, c.content) for c in chunks] == [
        (1, "stdout", "hello "),
        (2, "stderr", "oops\n"),
        (3, "stdout", "world\n"),
        (4, "normalized", '{"op":"add"}'),
    ]
    assert all(isinstance(c, LogChunk) and c.inserted_at.tzinfo is not None for c in chunks)
    assert [c.seq for c in store.read(proc.id, after_seq=2)] == [3, 4]
    assert [c.seq for c in store.read(proc.id, after_seq=1, limit=2)] == [2, 3]
    assert store.read(proc.id, after_seq=4) == []
    assert store.last_seq(proc.id) == 4
    assert store.has_logs(proc.id)


def test_each_chunk_is_its_own_row_and_earlier_rows_never_change(migrated: Database) -> None:
    *_, proc = make_chain()
    store = LogStore(migrated)
    store.append_many(proc.id, [("stdout", f"line {i}\n") for i in range(5)])
    before = _rows(proc.id)
    assert len(before) == 5
    for i in range(5, 50):
        store.append(proc.id, "stdout" if i % 2 else "stderr", f"line {i}\n")
    after = _rows(proc.id)
    assert len(after) == 50
    assert after[:5] == before  # ids, content, sizes and timestamps untouched
    assert [r[1] for r in after] == list(range(1, 51))


def test_total_bytes_counts_utf8(migrated: Database) -> None:
    *_, proc = make_chain()
    store = LogStore(migrated)
    store.append(proc.id, "stdout", "abc")
    store.append(proc.id, "stdout", "é✓")  # 2 + 3 bytes
    store.append(proc.id, "stdout", "😀")  # 4 bytes
    assert store.total_bytes(proc.id) == 3 + 5 + 4
    assert [c.byte_size for c in store.read(proc.id)] == [3, 5, 4]
    assert store.total_bytes(uuid.uuid4()) == 0


def test_text_databases_cannot_hold_is_made_storable(migrated: Database) -> None:
    *_, proc = make_chain()
    store = LogStore(migrated)
    store.append(proc.id, "stdout", "a\x00b")
    store.append(proc.id, "stdout", "bad \udcff surrogate")
    contents = [c.content for c in store.read(proc.id)]
    assert contents == ["a\ufffdb", "bad \ufffd surrogate"]


def test_bad_appends_are_refused_whole(migrated: Database) -> None:
    *_, proc = make_chain()
    store = LogStore(migrated)
    with pytest.raises(LogStoreError, match="unknown log kind 'STDOUT'"):
        store.append_many(proc.id, [("stdout", "fine"), ("STDOUT", "bad")])
    with pytest.raises(LogStoreError, match="must be text"):
        store.append(proc.id, "stdout", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(LogStoreError, match="not a UUID"):
        store.append("nope", "stdout", "x")
    with pytest.raises(LogStoreError, match="cannot append logs of execution"):
        store.append(uuid.uuid4(), "stdout", "no such process")
    assert _rows(proc.id) == []
    assert store.append(proc.id, "stdout", "still numbered from one") == 1


def test_ten_thousand_appends(migrated: Database) -> None:
    *_, proc = make_chain()
    store = LogStore(migrated)
    for start in range(0, 10_000, 250):
        store.append_many(proc.id, [("stdout", f"{i}\n") for i in range(start, start + 250)])
    for i in range(200):  # and single appends after the batches continue the numbering
        store.append(proc.id, "stderr", f"e{i}")
    assert store.last_seq(proc.id) == 10_200
    assert ExecutionProcessLog.select().where(ExecutionProcessLog.execution == proc.id).count() == 10_200
    page = store.read(proc.id, after_seq=9_998, limit=3)
    assert [(c.seq, c.content) for c in page] == [(9_999, "9998\n"), (10_000, "9999\n"), (10_001, "e0")]
    assert store.total_bytes(proc.id) == sum(len(f"{i}\n") for i in range(10_000)) + sum(
        len(f"e{i}") for i in range(200)
    )


def test_concurrent_appenders_get_unique_gapless_seqs(migrated: Database) -> None:
    *_, proc = make_chain()
    store = LogStore(migrated)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(40):
                store.append(proc.id, "stdout", f"{name}{i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            migrated.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    chunks = store.read(proc.id)
    assert [c.seq for c in chunks] == list(range(1, 161))
    for name in "abcd":  # each writer's chunks keep their own order
        assert [c.content for c in chunks if c.content.startswith(name)] == [f"{name}{i}" for i in range(40)]


def test_a_second_writer_does_not_overwrite(migrated: Database) -> None:
    """Two stores (e.g. two processes) on one execution: the stale one detects the clash and renumbers."""
    *_, proc = make_chain()
    first, second = LogStore(migrated), LogStore(migrated)
    assert first.append_many(proc.id, [("stdout", "a"), ("stdout", "b")]) == [1, 2]
    assert second.append(proc.id, "stdout", "c") == 3
    assert first.append(proc.id, "stdout", "d") == 4  # its cached counter said 3
    assert [c.content for c in first.read(proc.id)] == ["a", "b", "c", "d"]
    first.forget(proc.id)
    assert first.append(proc.id, "finished", "") == 5


def test_logs_go_with_their_process(migrated: Database) -> None:
    *_, attempt, proc = make_chain()
    other = ExecutionProcess.create(task_attempt=attempt)
    store = LogStore(migrated)
    store.append(proc.id, "stdout", "mine")
    store.append(other.id, "stdout", "theirs")
    proc.delete_instance()
    assert not store.has_logs(proc.id)
    assert [c.content for c in store.read(other.id)] == ["theirs"]


def test_prune_deletes_old_and_oldest_logs_never_a_running_one(migrated: Database) -> None:
    """Retention on both backends: by age, then oldest first by total size; running logs stay."""
    import datetime as dt

    from anyon.services.db.columns import utc_now

    now = utc_now()
    store = LogStore(migrated)
    procs = {}
    for name, status, age_days in (
        ("ancient", "completed", 50),
        ("old", "failed", 20),
        ("new", "killed", 1),
        ("running", "running", 400),
    ):
        *_, proc = make_chain(status=status)
        then = now - dt.timedelta(days=age_days)
        completed = None if status == "running" else then
        ExecutionProcess.update(started_at=then, updated_at=then, completed_at=completed).where(
            ExecutionProcess.id == proc.id
        ).execute()
        store.append(proc.id, "stdout", "x" * 100)
        procs[name] = proc.id
    before = _rows(procs["running"])
    assert store.prune(ended_before=now - dt.timedelta(days=30), max_total_bytes=None) == [procs["ancient"]]
    assert store.prune(ended_before=now - dt.timedelta(days=30), max_total_bytes=None) == []
    assert store.prune(ended_before=None, max_total_bytes=250) == [procs["old"]]
    assert store.prune(ended_before=None, max_total_bytes=0) == [procs["new"]]
    assert [store.has_logs(procs[n]) for n in ("ancient", "old", "new")] == [False, False, False]
    assert _rows(procs["running"]) == before
    assert store.append(procs["running"], "stdout", "more") == 2
