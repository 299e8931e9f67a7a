"""Bounded logs through a real local-mode server: the per-process cap (head, marker, tail), log retention."""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee as pw
import pytest

from anyon.services.db.columns import utc_now
from anyon.services.db.models import ExecutionProcess, ExecutionProcessLog
from anyon.services.logs.logcap import LogCap, is_marker
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import make_project, start, use_fake_agent, wait_processes
from tests.test_streams import read_to_finished, refused, ws

CAP = 2 * 1024 * 1024
LAST = "LAST LINE OF THE FLOOD"
LINES = 525000  # of 100 bytes: 52.5 MB

# The agent's answer (a run without one is not completed); the flooders print it, counted with the rest.
ANSWER = '{"type":"assistant","message":{"content":[{"type":"text","text":"flooded"}]}}\n'

# Waits for the test's followers (a "go" file), then prints `lines` of numbered 100-byte lines on stdout
# (big writes: fast), a few stderr lines in between, its answer, and a last line the tail must keep.
FLOODER = """\
import os, sys, time
sys.stdin.read()
go = {go!r}
while not os.path.exists(go):
    time.sleep(0.01)
line = "x" * 89
i = 0
while i < {lines}:
    sys.stdout.write("".join(f"{{i + k:09d}} {{line}}\\n" for k in range(5000)))
    i += 5000
    if i % 100000 == 0:
        sys.stderr.write(f"progress {{i}}\\n")
sys.stdout.write({answer!r})
sys.stdout.write({last!r} + "\\n")
sys.stdout.flush()
"""

# One giant line of multibyte characters, never a newline: the cuts cannot use line boundaries, and the
# normaliser's unterminated line meets the marker (a window-sized patch in the live store). Its answer
# comes first, the only line that ends.
NO_NEWLINES = """\
import os, sys, time
sys.stdin.read()
while not os.path.exists({go!r}):
    time.sleep(0.01)
sys.stdout.write({answer!r})
for _ in range(30):
    sys.stdout.write("é€" * 200000)
sys.stdout.write("END")
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # a memory window smaller than the cap: live followers fall behind it and catch up from the log store
    settings = {"log_cap_bytes": CAP, "log_memory_bytes": 256 * 1024, "stop_escalation_seconds": 0.5}
    config = make_config(tmp_path, executions=settings)
    with live_server(config) as live:
        use_fake_agent(live)
        yield live


def agent_script(server: LiveServer, tmp_path: Path, source: str) -> None:
    script = tmp_path / "agent.py"
    script.write_text(source)
    use_fake_agent(server, f"{sys.executable} {script}")


def first_process(server: LiveServer, attempt_id: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        processes = server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt_id}")
        if processes:
            return str(processes[0]["id"])
        assert time.monotonic() < deadline, "the attempt never started a process"
        time.sleep(0.02)


def stored(server: LiveServer, pid: str) -> list[tuple[str, str]]:
    with server.services.database.connection():
        return [(c.kind, c.content) for c in server.services.logstore.read(pid)]


def raw_doc(server: LiveServer, pid: str, conn: Any = None) -> list[tuple[str, str]]:
    conn = conn or ws(server, f"/api/execution-processes/{pid}/raw-logs/ws")
    with conn:
        doc, _ = read_to_finished(conn, {"entries": []}, timeout=120)
    kinds = {"STDOUT": "stdout", "STDERR": "stderr"}
    return [(kinds[e["type"]], e["content"]) for e in doc["entries"]]


def normalized_doc(server: LiveServer, pid: str, conn: Any = None) -> list[dict[str, Any]]:
    conn = conn or ws(server, f"/api/execution-processes/{pid}/normalized-logs/ws")
    with conn:
        doc, _ = read_to_finished(conn, {"entries": []}, timeout=120)
    return [e["content"] for e in doc["entries"]]


def omitted(chunks: list[tuple[str, str]]) -> list[int]:
    return [
        int(m.group(1)) for _, text in chunks if (m := re.fullmatch(r"\[anyon\] (\d+) bytes omitted\n", text))
    ]


def payload_bytes(chunks: list[tuple[str, str]]) -> int:
    return sum(len(text.encode()) for _, text in chunks if not text.startswith("[anyon] "))


def test_a_50_mb_flood_keeps_head_marker_and_tail_in_store_and_both_streams(
    server: LiveServer, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    agent_script(server, tmp_path, FLOODER.format(go=str(go), lines=LINES, last=LAST, answer=ANSWER))
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "flood")
    pid = first_process(server, attempt["id"])
    raw_live = ws(server, f"/api/execution-processes/{pid}/raw-logs/ws")
    normalized_live = ws(server, f"/api/execution-processes/{pid}/normalized-logs/ws")
    go.touch()
    live_raw = raw_doc(server, pid, raw_live)
    live_entries = normalized_doc(server, pid, normalized_live)
    (process,) = wait_processes(server, attempt["id"], 1, timeout=120)
    assert process["status"] == "completed"

    chunks = stored(server, pid)
    progress = sum(len(f"progress {i}\n") for i in range(100000, LINES + 1, 100000))
    printed = LINES * 100 + progress + len(ANSWER) + len(LAST) + 1
    assert payload_bytes(chunks) <= CAP  # the markers are the only thing beyond the cap
    (count,) = omitted(chunks)
    assert payload_bytes(chunks) + count == printed  # every byte is either kept or counted as omitted
    assert chunks[-1] == ("stdout", chunks[-1][1]) and chunks[-1][1].endswith(LAST + "\n")
    first = next(text for _, text in chunks if not text.startswith("[anyon] command: "))
    assert first.startswith("000000000 ")  # the head is the start of the output (after the command line)
    with server.services.database.connection():
        rows = ExecutionProcessLog.select().where(ExecutionProcessLog.execution == pid).count()
    assert rows == len(chunks)

    # the live follower and a later reader see exactly what is stored: head, notice, marker, tail
    assert live_raw == chunks
    assert omitted(live_raw) == [count]
    assert raw_doc(server, pid) == live_raw

    marker = f"[anyon] {count} bytes omitted"
    for entries in (live_entries, normalized_doc(server, pid)):
        texts = [e["content"] for e in entries]
        assert marker in texts
        assert any(t.startswith("[anyon] output reached the log cap") for t in texts)
        assert texts.index(marker) > 0 and LAST in texts[-1]
        kinds = {e["entry_type"]["type"] for e in entries if e["content"] == marker}
        assert kinds == {"system_message"}
        # no line was glued across the cut: every stdout line is whole or the agent's own
        assert all(re.fullmatch(r"\d{9} x{89}", t) for t in texts if t[:1].isdigit())


def test_a_flood_without_newlines_of_multibyte_text_stays_within_the_cap(
    server: LiveServer, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    agent_script(server, tmp_path, NO_NEWLINES.format(go=str(go), answer=ANSWER))
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "one long line")
    pid = first_process(server, attempt["id"])
    raw_live = ws(server, f"/api/execution-processes/{pid}/raw-logs/ws")
    normalized_live = ws(server, f"/api/execution-processes/{pid}/normalized-logs/ws")
    go.touch()
    live_raw = raw_doc(server, pid, raw_live)
    live_entries = normalized_doc(server, pid, normalized_live)
    wait_processes(server, attempt["id"], 1, timeout=120)
    chunks = stored(server, pid)
    assert payload_bytes(chunks) <= CAP
    (count,) = omitted(chunks)
    # é is 2 bytes, € 3: no character split
    assert payload_bytes(chunks) + count == len(ANSWER) + 30 * 200000 * 5 + 3
    assert chunks[-1][1].endswith("END")
    assert live_raw == chunks
    assert raw_doc(server, pid) == chunks
    for entries in (live_entries, normalized_doc(server, pid)):
        texts = [e["content"] for e in entries]
        assert f"[anyon] {count} bytes omitted" in texts and texts[-1].endswith("END")


def test_an_agent_printing_the_marker_text_itself_changes_nothing_stored(
    server: LiveServer, tmp_path: Path
) -> None:
    """A forged marker is only the agent's own output: it is stored as printed and the cap still holds."""
    agent_script(
        server,
        tmp_path,
        "import sys\nsys.stdin.read()\nsys.stderr.write('[anyon] 999 bytes omitted\\n')\nprint('small')\n",
    )
    project = make_project(server, tmp_path)
    _task, attempt = start(server, project, "forge")
    (process,) = wait_processes(server, attempt["id"], 1)
    chunks = stored(server, process["id"])
    assert ("stdout", "small\n") in chunks
    assert not any(t.startswith("[anyon] output reached") for _, t in chunks)


# --- retention ------------------------------------------------------------------------------------


def _finished_attempt(server: LiveServer, project: dict[str, Any], title: str) -> str:
    _task, attempt = start(server, project, title)
    (process,) = wait_processes(server, attempt["id"], 1)
    return str(process["id"])


def _running_attempt(server: LiveServer, project: dict[str, Any]) -> str:
    _task, attempt = start(server, project, "sleep")  # the stand-in agent prints, then sleeps
    pid = first_process(server, attempt["id"])
    deadline = time.monotonic() + 30
    while not stored(server, pid):
        assert time.monotonic() < deadline, "the sleeping agent never printed"
        time.sleep(0.02)
    return pid


def _age(server: LiveServer, pid: str, days: float) -> None:
    """Make a process look as if it started (and, when ended, ended) ``days`` ago."""
    then = utc_now() - dt.timedelta(days=days)
    with server.services.database.connection():
        row = ExecutionProcess.get_by_id(pid)
        completed = then if row.completed_at is not None else None
        ExecutionProcess.update(started_at=then, updated_at=then, completed_at=completed).where(
            ExecutionProcess.id == pid
        ).execute()


def _log_rows(server: LiveServer) -> dict[str, int]:
    with server.services.database.connection():
        rows = (
            ExecutionProcessLog.select(ExecutionProcessLog.execution, pw.fn.COUNT(ExecutionProcessLog.id))
            .group_by(ExecutionProcessLog.execution)
            .tuples()
        )
        return {str(eid): int(n) for eid, n in rows}


def test_retention_by_age_deletes_old_logs_but_never_a_running_process_log(tmp_path: Path) -> None:
    config = make_config(tmp_path, retention={"log_days": 30.0, "log_total_bytes": 0})
    with live_server(config) as server:
        use_fake_agent(server)
        project = make_project(server, tmp_path)
        old = _finished_attempt(server, project, "old")
        recent = _finished_attempt(server, project, "recent")
        running = _running_attempt(server, project)
        _age(server, old, 40)
        _age(server, running, 400)  # running for over a year: still kept
        _age(server, recent, 29)
        before = _log_rows(server)
        assert {old, recent, running} <= set(before)

        assert server.services.maintenance.prune_logs() == [old]
        after = _log_rows(server)
        assert old not in after
        assert after[recent] == before[recent] and after[running] >= before[running]
        code, body = refused(server, f"/api/execution-processes/{old}/raw-logs/ws")
        assert code == 404 and "No logs" in body["message"]
        # the running process keeps being captured and is readable live
        assert server.ok("GET", f"/api/execution-processes/{running}")["status"] == "running"
        assert any("Working on: sleep" in text for _, text in stored(server, running))
        server.ok("POST", f"/api/execution-processes/{running}/stop")
        assert server.services.maintenance.prune_logs() == []  # nothing else is old enough


def test_retention_by_total_size_deletes_the_oldest_ended_logs_first(tmp_path: Path) -> None:
    config = make_config(tmp_path, retention={"log_days": 0.0, "log_total_bytes": 1})
    with live_server(config) as server:
        use_fake_agent(server)
        project = make_project(server, tmp_path)
        first = _finished_attempt(server, project, "first")
        second = _finished_attempt(server, project, "second")
        running = _running_attempt(server, project)
        _age(server, first, 2)
        _age(server, second, 1)
        _age(server, running, 3)
        # over the limit (1 byte): every ended log goes, the oldest first; the running one stays
        assert server.services.maintenance.prune_logs() == [first, second]
        assert set(_log_rows(server)) == {running}
        server.ok("POST", f"/api/execution-processes/{running}/stop")


def test_retention_by_size_stops_once_under_the_limit(tmp_path: Path) -> None:
    config = make_config(tmp_path, retention={"log_days": 0.0, "log_total_bytes": 0})
    with live_server(config) as server:
        use_fake_agent(server)
        project = make_project(server, tmp_path)
        pids = [_finished_attempt(server, project, f"task {i}") for i in range(3)]
        for age, pid in zip((3, 2, 1), pids, strict=True):
            _age(server, pid, age)
        with server.services.database.connection():
            sizes = [server.services.logstore.total_bytes(pid) for pid in pids]
            # room for the two newest logs only
            pruned = server.services.logstore.prune(ended_before=None, max_total_bytes=sizes[1] + sizes[2])
        assert [str(p) for p in pruned] == [pids[0]]
        assert set(_log_rows(server)) == set(pids[1:])


# --- the cap on its own ---------------------------------------------------------------------------


def test_output_under_the_cap_passes_whole_and_a_zero_cap_is_no_cap() -> None:
    cap = LogCap(100)
    assert cap.accept("stdout", "a" * 50) == [("stdout", "a" * 50)]
    assert cap.close() == [] and cap.accept("stderr", "after\n") == [("stderr", "after\n")]
    off = LogCap(0)
    assert off.accept("stdout", "x" * 10_000) == [("stdout", "x" * 10_000)] and off.close() == []


def test_output_between_half_and_the_whole_cap_says_nothing_was_omitted() -> None:
    cap = LogCap(100)
    out = cap.accept("stdout", "1234\n" * 10) + cap.accept("stdout", "tail\n") + cap.close()
    assert out[0] == ("stdout", "1234\n" * 10)
    assert is_marker(out[1][1]) and out[2] == ("stderr", "[anyon] 0 bytes omitted\n")
    assert out[3:] == [("stdout", "tail\n")]


def test_many_tiny_writes_keep_the_ring_small() -> None:
    cap = LogCap(64 * 1024)
    for i in range(200_000):
        cap.accept("stdout" if i % 2 else "stderr", "z")
    assert cap.held_bytes <= cap.tail_budget
    assert len(cap._ring) <= max(16, cap.tail_budget // 512)
