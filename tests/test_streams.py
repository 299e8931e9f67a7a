"""The live streams of spec §2 with a real WebSocket client (websockets) against a real uvicorn."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from anyon.services.board import events as ev
from anyon.services.logs import jsonpatch as jp
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_local import start, use_fake_agent

# --- helpers ---------------------------------------------------------------------------------------


def ws(server: LiveServer, path: str) -> ClientConnection:
    return connect(server.ws_url + path, open_timeout=10, max_size=None)


def recv(conn: ClientConnection, timeout: float = 10.0) -> Any:
    return json.loads(conn.recv(timeout=timeout))


def ops_of(frame: Any) -> list[dict[str, Any]]:
    assert set(frame) == {"JsonPatch"}, frame
    return frame["JsonPatch"]  # type: ignore[no-any-return]


def follow(conn: ClientConnection, doc: Any, until: Any, timeout: float = 15.0) -> Any:
    """Apply frames to ``doc`` until ``until(doc)`` holds; returns the document."""
    deadline = time.monotonic() + timeout
    while not until(doc):
        left = deadline - time.monotonic()
        assert left > 0, f"stream never reached the expected state: {doc}"
        frame = recv(conn, left)
        if frame == {"finished": True}:
            raise AssertionError(f"stream finished early: {doc}")
        doc = jp.apply_ops(doc, ops_of(frame))
    return doc


def read_to_finished(conn: ClientConnection, doc: Any, timeout: float = 30.0) -> tuple[Any, int]:
    deadline = time.monotonic() + timeout
    frames = 0
    while True:
        frame = recv(conn, max(0.1, deadline - time.monotonic()))
        frames += 1
        if frame == {"finished": True}:
            return doc, frames
        doc = jp.apply_ops(doc, ops_of(frame))


def refused(server: LiveServer, path: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as info:
        ws(server, path).close()
    response = info.value.response
    return response.status_code, json.loads(response.body or b"{}")


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def new_project(server: LiveServer, tmp_path: Path, name: str = "proj", **scripts: str) -> dict[str, Any]:
    body = {"name": name, "git_repo_path": str(tmp_path / name), "use_existing_repo": False, **scripts}
    return server.ok("POST", "/api/projects", json=body)  # type: ignore[no-any-return]


def processes(server: LiveServer, attempt_id: str) -> list[dict[str, Any]]:
    return server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt_id}")  # type: ignore[no-any-return]


def wait_done(server: LiveServer, attempt_id: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def done() -> bool:
        found[:] = processes(server, attempt_id)
        return len(found) >= count and all(p["status"] != "running" for p in found)

    wait_for(done, 30, "processes to finish")
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path)) as live:
        use_fake_agent(live)
        yield live


@pytest.fixture
def db_server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path, database={"url": database_url})) as live:
        yield live


# --- tasks stream -------------------------------------------------------------------------------


def test_tasks_stream_snapshot_live_and_reconnect(db_server: LiveServer, tmp_path: Path) -> None:
    project = new_project(db_server, tmp_path)
    path = f"/api/tasks/stream/ws?project_id={project['id']}"
    with ws(db_server, path) as conn:
        first = ops_of(recv(conn))
        assert first == [{"op": "replace", "path": "/tasks", "value": {}}]  # sent even when empty
        doc = jp.apply_ops({"tasks": {}}, first)
        task = db_server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "one"})
        # published before the POST returned: the frame is already on its way
        frame = ops_of(recv(conn, timeout=2))
        assert frame[0]["op"] == "add" and frame[0]["path"] == f"/tasks/{task['id']}"
        doc = jp.apply_ops(doc, frame)
        assert doc["tasks"][task["id"]]["title"] == "one"
        assert set(doc["tasks"][task["id"]]) >= {"has_in_progress_attempt", "last_attempt_failed", "executor"}
        db_server.ok("PUT", f"/api/tasks/{task['id']}", json={"title": "renamed", "status": "inreview"})
        doc = follow(conn, doc, lambda d: d["tasks"][task["id"]]["title"] == "renamed")
        conn.send("client frames are ignored")
        db_server.ok("DELETE", f"/api/tasks/{task['id']}")
        doc = follow(conn, doc, lambda d: task["id"] not in d["tasks"])
    second = db_server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "two"})
    with ws(db_server, path) as conn:  # a reconnect gets a fresh, full snapshot
        snapshot = ops_of(recv(conn))
        assert snapshot[0]["op"] == "replace" and list(snapshot[0]["value"]) == [second["id"]]


def test_stream_upgrade_refusals_are_enveloped(server: LiveServer) -> None:
    status, body = refused(server, "/api/tasks/stream/ws")
    assert status == 400 and body["success"] is False and "project_id" in body["message"]
    status, body = refused(server, "/api/tasks/stream/ws?project_id=nope")
    assert status == 400 and "UUID" in body["message"]
    status, body = refused(server, "/api/tasks/stream/ws?project_id=00000000-0000-0000-0000-000000000001")
    assert status == 404 and set(body) == {"success", "data", "error_data", "message"}
    for path in (
        "/api/execution-processes/00000000-0000-0000-0000-000000000001/raw-logs/ws",
        "/api/execution-processes/00000000-0000-0000-0000-000000000001/normalized-logs/ws",
        "/api/task-attempts/00000000-0000-0000-0000-000000000001/diff/ws",
        "/api/execution-processes/stream/ws?task_attempt_id=00000000-0000-0000-0000-000000000001",
        "/api/drafts/stream/ws?project_id=00000000-0000-0000-0000-000000000001",
    ):
        status, body = refused(server, path)
        assert status == 404 and body["success"] is False and body["message"], path


def test_disconnect_releases_the_subscription(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    bus = server.services.events
    before = bus.subscriber_count
    with contextlib.ExitStack() as stack:
        conns = [
            stack.enter_context(ws(server, f"/api/tasks/stream/ws?project_id={project['id']}"))
            for _ in range(3)
        ]
        for conn in conns:
            recv(conn)
        assert bus.subscriber_count == before + 3
    wait_for(lambda: bus.subscriber_count == before, 5, "subscriptions to be released")


def test_slow_consumer_is_resynchronised_with_a_snapshot(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "real"})
    bus = server.services.events
    topic = ev.tasks_topic(project["id"])
    filler = "x" * 20_000
    with ws(server, f"/api/tasks/stream/ws?project_id={project['id']}") as conn:
        recv(conn)
        # the client reads nothing while far more than a queue's worth of big events is published
        for i in range(3000):
            fake = {"id": f"fake-{i}", "project_id": project["id"], "title": filler}
            bus.publish(topic, jp.task_upsert_ops(fake))
        time.sleep(1.0)
        snapshots = 0
        doc: Any = {"tasks": {}}  # the first snapshot was already read above
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                frame = recv(conn, timeout=3.0)
            except TimeoutError:
                break
            ops = ops_of(frame)
            snapshots += ops[0]["path"] == "/tasks"
            doc = jp.apply_ops(doc, ops)
        assert snapshots >= 1, "the lagging client never got a fresh snapshot"
        # the resync snapshot is the database's state; the events dropped for this client are gone from it
        assert task["id"] in doc["tasks"]
        assert len(doc["tasks"]) < 3000
        assert all(sub.pending <= 1000 for sub in bus._subscribers)


# --- processes, raw logs, normalized logs ---------------------------------------------------------


def test_processes_stream_and_dropped_filter(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    _task, attempt = start(server, project, "noop")
    with ws(server, f"/api/execution-processes/stream/ws?task_attempt_id={attempt['id']}") as conn:
        first = ops_of(recv(conn))
        assert first[0]["op"] == "replace" and first[0]["path"] == "/execution_processes"
        doc = jp.apply_ops({"execution_processes": {}}, first)
        doc = follow(
            conn,
            doc,
            lambda d: (
                bool(d["execution_processes"])
                and all(p["status"] != "running" for p in d["execution_processes"].values())
            ),
            timeout=30,
        )
        (proc,) = doc["execution_processes"].values()
        assert proc["run_reason"] == "codingagent" and proc["status"] == "completed"
        with ws(
            server,
            f"/api/execution-processes/stream/ws?task_attempt_id={attempt['id']}&show_soft_deleted=true",
        ) as shown:
            shown_doc = jp.apply_ops({"execution_processes": {}}, ops_of(recv(shown)))
            drop(server, proc["id"])
            shown_doc = follow(shown, shown_doc, lambda d: d["execution_processes"][proc["id"]]["dropped"])
        doc = follow(conn, doc, lambda d: proc["id"] not in d["execution_processes"])
    with ws(server, f"/api/execution-processes/stream/ws?task_attempt_id={attempt['id']}") as conn:
        assert ops_of(recv(conn))[0]["value"] == {}


def drop(server: LiveServer, process_id: str) -> None:
    import uuid as _uuid

    from anyon.services.db.models import ExecutionProcess

    services = server.services
    with services.database.connection():
        ExecutionProcess.update(dropped=True).where(ExecutionProcess.id == _uuid.UUID(process_id)).execute()
    services.changes.process_changed(_uuid.UUID(process_id))


def dev_server_process(server: LiveServer, tmp_path: Path, script: str) -> str:
    project = new_project(server, tmp_path, dev_script=script)
    _task, attempt = start(server, project, "noop")
    wait_done(server, attempt["id"], 1)
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/start-dev-server")
    dev = [p for p in processes(server, attempt["id"]) if p["run_reason"] == "devserver"]
    assert len(dev) == 1
    return str(dev[0]["id"])


def raw_text(doc: Any, kind: str = "STDOUT") -> str:
    return "".join(e["content"] for e in doc["entries"] if e["type"] == kind)


def test_raw_logs_live_then_finished_then_replay(server: LiveServer, tmp_path: Path) -> None:
    script = "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done; echo oops >&2"
    pid = dev_server_process(server, tmp_path, script)
    path = f"/api/execution-processes/{pid}/raw-logs/ws"
    with ws(server, path) as conn:
        first = ops_of(recv(conn))
        assert first[0]["path"] == "/entries/0" and first[0]["value"]["type"] in ("STDOUT", "STDERR")
        # the first frame arrives while the script is still running: it is followed live
        assert server.ok("GET", f"/api/execution-processes/{pid}")["status"] == "running"
        doc, _ = read_to_finished(conn, jp.apply_ops({"entries": []}, first))
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert raw_text(doc) == "".join(f"line{i}\n" for i in range(1, 6))
    assert raw_text(doc, "STDERR") == "oops\n"
    wait_for(lambda: server.services.executions.store_for(_uuid(pid)) is None, 10, "the store to close")
    with ws(server, path) as conn:  # finished process: replay from the log store, then finished
        replay, _ = read_to_finished(conn, {"entries": []})
    assert replay == doc


def _uuid(value: str) -> Any:
    import uuid as _u

    return _u.UUID(value)


def test_normalized_logs_live_and_historic(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    _task, attempt = start(server, project, "write something")
    wait_for(lambda: bool(processes(server, attempt["id"])), 15, "the agent process")
    pid = processes(server, attempt["id"])[0]["id"]
    with ws(server, f"/api/execution-processes/{pid}/normalized-logs/ws") as conn:
        live, _ = read_to_finished(conn, {"entries": []})
    kinds = [e["content"]["entry_type"]["type"] for e in live["entries"]]
    assert all(e["type"] == "NORMALIZED_ENTRY" for e in live["entries"])
    assert "assistant_message" in kinds and "tool_use" in kinds, kinds
    wait_done(server, attempt["id"], 1)
    wait_for(lambda: server.services.executions.store_for(_uuid(pid)) is None, 10, "the store to close")
    with ws(server, f"/api/execution-processes/{pid}/normalized-logs/ws") as conn:
        historic, _ = read_to_finished(conn, {"entries": []})

    def strip(doc: Any) -> list[Any]:
        return [{k: v for k, v in e["content"].items() if k != "timestamp"} for e in doc["entries"]]

    assert strip(historic) == strip(live)


# --- diff stream ---------------------------------------------------------------------------------


def test_diff_stream_initial_then_live_add_and_remove(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    _task, attempt = start(server, project, "write agent file")
    wait_done(server, attempt["id"], 1)
    worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    with ws(server, f"/api/task-attempts/{attempt['id']}/diff/ws") as conn:
        doc = follow(conn, {"entries": {}}, lambda d: "agent.txt" in d["entries"])
        entry = doc["entries"]["agent.txt"]
        assert entry["type"] == "DIFF" and entry["content"]["change"] == "added"
        assert entry["content"]["newContent"] == "write agent file\n"
        (worktree / "sub").mkdir()
        (worktree / "sub" / "new~file.txt").write_text("hello\nworld\n")
        frame_doc = follow(conn, doc, lambda d: "sub/new~file.txt" in d["entries"])
        assert frame_doc["entries"]["sub/new~file.txt"]["content"]["additions"] == 2
        (worktree / "agent.txt").write_text("changed\n")
        doc = follow(
            conn, frame_doc, lambda d: d["entries"]["agent.txt"]["content"]["newContent"] == "changed\n"
        )
        (worktree / "sub" / "new~file.txt").unlink()
        doc = follow(conn, doc, lambda d: "sub/new~file.txt" not in d["entries"])
    with ws(server, f"/api/task-attempts/{attempt['id']}/diff/ws?stats_only=true") as conn:
        frame = ops_of(recv(conn))
        assert frame[0]["path"] == "/entries/agent.txt"
        content = frame[0]["value"]["content"]
        assert content["contentOmitted"] is True and content["newContent"] is None
        assert content["additions"] == 1


def test_diff_stream_escapes_paths_and_releases_the_watcher(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anyon.api.streams import diff
    from anyon.services.logs.diffstream import AttemptDiffStream

    watchers: list[Any] = []

    class Recorded(AttemptDiffStream):
        ended = False

        async def changes(self) -> Any:
            watchers.append(self)
            try:
                async for ops in super().changes():
                    yield ops
            finally:
                self.ended = True

    monkeypatch.setattr(diff, "AttemptDiffStream", Recorded)
    project = new_project(server, tmp_path)
    _task, attempt = start(server, project, "noop")
    wait_done(server, attempt["id"], 1)
    worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    (worktree / "a").mkdir()
    (worktree / "a" / "b~c.txt").write_text("x\n")
    with ws(server, f"/api/task-attempts/{attempt['id']}/diff/ws") as conn:
        frame = ops_of(recv(conn))
        assert frame[0]["path"] == "/entries/a~1b~0c.txt"
    wait_for(lambda: bool(watchers) and all(w.ended for w in watchers), 5, "the file watcher to stop")


def test_diff_stream_of_a_missing_worktree_is_not_a_crash(server: LiveServer, tmp_path: Path) -> None:
    import shutil

    project = new_project(server, tmp_path)
    _task, attempt = start(server, project, "write agent file")
    wait_done(server, attempt["id"], 1)
    worktree = server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    shutil.rmtree(worktree)
    with ws(server, f"/api/task-attempts/{attempt['id']}/diff/ws") as conn:
        # the committed branch tip is compared instead; the stream stays open and idle
        frame = ops_of(recv(conn))
        assert frame[0]["path"] == "/entries/agent.txt"
        with pytest.raises(TimeoutError):
            conn.recv(timeout=0.5)


def test_diff_stream_of_a_merged_attempt_serves_the_merge_commit_until_the_worktree_changes(
    server: LiveServer, tmp_path: Path
) -> None:
    project = new_project(server, tmp_path)
    _task, attempt = start(server, project, "write agent file")
    wait_done(server, attempt["id"], 1)
    assert server.ok("POST", f"/api/task-attempts/{attempt['id']}/merge") is None
    with ws(server, f"/api/task-attempts/{attempt['id']}/diff/ws") as conn:
        doc, _frames = read_to_finished(conn, {"entries": {}})
    assert set(doc["entries"]) == {"agent.txt"}
    assert doc["entries"]["agent.txt"]["content"]["change"] == "added"
    worktree = Path(server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"])
    (worktree / "later.txt").write_text("after the merge\n")
    with ws(server, f"/api/task-attempts/{attempt['id']}/diff/ws") as conn:
        doc = follow(conn, {"entries": {}}, lambda d: "later.txt" in d["entries"])
        with pytest.raises(TimeoutError):
            conn.recv(timeout=0.5)  # live mode: no "finished"


# --- drafts and SSE ---------------------------------------------------------------------------------


def test_drafts_stream_snapshot_and_live(server: LiveServer, tmp_path: Path) -> None:
    project = new_project(server, tmp_path)
    _task, attempt = start(server, project, "noop")
    with ws(server, f"/api/drafts/stream/ws?project_id={project['id']}") as conn:
        first = ops_of(recv(conn))
        assert first[0]["path"] == "/drafts"
        entry = first[0]["value"][attempt["id"]]
        assert entry["retry"] is None and entry["follow_up"]["version"] == 0
        assert entry["follow_up"]["prompt"] == ""
        doc = jp.apply_ops({"drafts": {}}, first)
        draft = {
            "id": "d1",
            "task_attempt_id": attempt["id"],
            "draft_type": "follow_up",
            "prompt": "hi",
            "version": 1,
        }
        server.services.events.publish(
            ev.drafts_topic(project["id"]), jp.draft_ops(attempt["id"], "follow_up", draft)
        )
        doc = follow(conn, doc, lambda d: d["drafts"][attempt["id"]]["follow_up"]["prompt"] == "hi")
        # an attempt created after the snapshot: its entry is created first, so the op applies
        other = "11111111-1111-1111-1111-111111111111"
        server.services.events.publish(ev.drafts_topic(project["id"]), jp.draft_ops(other, "retry", draft))
        doc = follow(conn, doc, lambda d: other in d["drafts"] and d["drafts"][other]["retry"] is not None)


def test_sse_replays_history_then_live_with_keepalive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from anyon.api.streams import sse

    monkeypatch.setattr(sse, "DEFAULT_KEEPALIVE_SECONDS", 0.3)
    with live_server(make_config(tmp_path)) as server:
        project = new_project(server, tmp_path)
        early = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "early"})
        bus = server.services.events
        before = bus.subscriber_count
        with (
            httpx.Client(base_url=server.base_url, timeout=10) as client,
            client.stream("GET", "/api/events") as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            seen: list[str] = []
            late = None
            saw_keepalive = False
            for line in lines:
                seen.append(line)
                if line.startswith(":"):
                    saw_keepalive = True
                    if late is None:
                        late = server.ok(
                            "POST", "/api/tasks", json={"project_id": project["id"], "title": "late"}
                        )
                if late is not None and late["id"] in line:
                    break
        text = "\n".join(seen)
        assert "event: json_patch" in text and early["id"] in text and saw_keepalive
        data = [json.loads(x[len("data: ") :]) for x in seen if x.startswith("data: ")]
        assert any(op["path"] == f"/tasks/{early['id']}" for ops in data for op in ops)
        assert any(x.startswith("id: ") for x in seen)
        wait_for(lambda: bus.subscriber_count == before, 5, "the SSE subscription to be released")
