"""The fast read path of the board and the project list: pooled connections, the read cache, ETags.

Real servers on 127.0.0.1 over real SQLite files (and PostgreSQL where it applies). The cache is checked
the way it could go wrong: a write from *outside* the server (another connection, as the CLI or a second
process would make) must show at once; a caller editing what it got must not change what the next
caller gets; a refused request must never be answered 304.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from live_server import LiveServer, live_server

from anyon.api.etag import matches
from anyon.api.json_media import dumps
from anyon.services.db import Database, queries
from anyon.services.db.models import ExecutionProcess, Project, Task, TaskAttempt
from anyon.services.db.readcache import DataVersion, ReadCache
from anyon.services.db.serialize import ts, uid


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    config = make_config(tmp_path, database={"url": database_url})
    with live_server(config) as live:
        yield live


def _board(server: LiveServer, tmp_path: Path, tasks: int = 5) -> str:
    project = server.ok(
        "POST",
        "/api/projects",
        json={"name": "board", "git_repo_path": str(tmp_path / "repo"), "use_existing_repo": False},
    )
    for i in range(tasks):
        server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": f"task {i}"})
    return str(project["id"])


def _db_file(server: LiveServer) -> str:
    url: str = server.services.database.url
    return url.removeprefix("sqlite://")


# --- the read cache ------------------------------------------------------------------------------


def test_a_commit_from_another_connection_shows_at_once(tmp_path: Path) -> None:
    with live_server(make_config(tmp_path)) as server:
        project_id = _board(server, tmp_path, tasks=3)
        path = f"/api/tasks?project_id={project_id}"
        first = server.ok("GET", path)
        assert server.ok("GET", path) == first  # a hit answers the same
        outside = sqlite3.connect(_db_file(server), isolation_level=None)
        try:
            outside.execute(
                "UPDATE tasks SET title = 'changed outside' WHERE project_id = ?", [uuid.UUID(project_id).hex]
            )
            titles = {t["title"] for t in server.ok("GET", path)}
            assert titles == {"changed outside"}
            outside.execute("UPDATE projects SET name = 'renamed outside'")
            assert [p["name"] for p in server.ok("GET", "/api/projects")] == ["renamed outside"]
            outside.execute("DELETE FROM tasks")
            assert server.ok("GET", path) == []
        finally:
            outside.close()


def test_api_writes_and_attempt_state_show_at_once(server: LiveServer, tmp_path: Path) -> None:
    project_id = _board(server, tmp_path, tasks=2)
    path = f"/api/tasks?project_id={project_id}"
    tasks = server.ok("GET", path)
    server.ok("PUT", f"/api/tasks/{tasks[0]['id']}", json={"status": "inreview"})
    assert {t["id"]: t["status"] for t in server.ok("GET", path)}[tasks[0]["id"]] == "inreview"
    server.ok("DELETE", f"/api/tasks/{tasks[1]['id']}")
    assert [t["id"] for t in server.ok("GET", path)] == [tasks[0]["id"]]
    # an attempt and a failed coding-agent process written beside the API (as the engine does)
    with server.services.database.connection():
        attempt = TaskAttempt.create(task=uuid.UUID(tasks[0]["id"]), executor="CLAUDE_CODE", branch="b")
        ExecutionProcess.create(
            task_attempt=attempt, run_reason="codingagent", status="failed", executor_action={}
        )
    (row,) = server.ok("GET", path)
    assert row["last_attempt_failed"] is True and row["executor"] == "CLAUDE_CODE"


def test_callers_get_copies_of_what_is_cached(tmp_path: Path) -> None:
    with live_server(make_config(tmp_path)) as server:
        project_id = uuid.UUID(_board(server, tmp_path, tasks=2))
        services = server.services
        board = services.tasks.list_for_project(project_id)
        board[0]["title"] = "edited by a caller"
        board.clear()
        projects = services.projects.list()
        projects[0]["name"] = "edited by a caller"
        assert {t["title"] for t in services.tasks.list_for_project(project_id)} == {"task 0", "task 1"}
        assert services.projects.list()[0]["name"] == "board"


def test_read_cache_off_and_postgres_query_every_time(tmp_path: Path) -> None:
    calls: list[int] = []

    def read() -> int:
        calls.append(1)
        return len(calls)

    off = ReadCache(None)
    assert [off.fetch("k", read), off.fetch("k", read)] == [1, 2]
    with live_server(make_config(tmp_path, database={"read_cache": False})) as server:
        project_id = _board(server, tmp_path, tasks=1)
        outside = sqlite3.connect(_db_file(server), isolation_level=None)
        outside.execute("UPDATE tasks SET title = 'x'")
        outside.close()
        assert server.ok("GET", f"/api/tasks?project_id={project_id}")[0]["title"] == "x"


def test_data_version_moves_on_commit_only(tmp_path: Path) -> None:
    file = tmp_path / "a dir?#%" / "v.db"  # characters a URI would read as its own
    file.parent.mkdir()
    writer = sqlite3.connect(file, isolation_level=None)
    writer.execute("PRAGMA journal_mode=wal")
    writer.execute("CREATE TABLE t (x)")
    version = DataVersion(str(file), 1.0)
    cache = ReadCache(version)
    reads: list[int] = []
    assert cache.fetch("k", lambda: reads.append(1) or len(reads)) == 1
    assert cache.fetch("k", lambda: reads.append(1) or len(reads)) == 1  # unchanged: a hit
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    assert cache.fetch("k", lambda: reads.append(1) or len(reads)) == 1  # not committed yet
    writer.execute("COMMIT")
    assert cache.fetch("k", lambda: reads.append(1) or len(reads)) == 2
    writer.close()
    version.close()
    assert DataVersion(str(tmp_path / "missing.db"), 1.0).current() is None  # never creates a file
    assert not (tmp_path / "missing.db").exists()


def test_a_commit_during_the_read_leaves_the_entry_stale(tmp_path: Path) -> None:
    """The version is read before the query: what a racing commit changed is read again next time."""
    file = tmp_path / "v.db"
    writer = sqlite3.connect(file, isolation_level=None)
    writer.execute("PRAGMA journal_mode=wal")
    writer.execute("CREATE TABLE t (x)")
    cache = ReadCache(DataVersion(str(file), 1.0))

    def racing_read() -> str:
        writer.execute("INSERT INTO t VALUES (1)")  # commits while the read runs
        return "old"

    assert cache.fetch("k", racing_read) == "old"
    assert cache.fetch("k", lambda: "new") == "new"


# --- ETags -----------------------------------------------------------------------------------------


def test_etag_304_and_a_new_tag_after_a_change(server: LiveServer, tmp_path: Path) -> None:
    project_id = _board(server, tmp_path, tasks=2)
    path = f"/api/tasks?project_id={project_id}"
    first = server.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = server.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert server.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert server.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    server.ok("POST", "/api/tasks", json={"project_id": project_id, "title": "one more"})
    changed = server.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert len(changed.json()["data"]) == 3


def test_no_etag_on_writes_errors_or_refusals(tmp_path: Path) -> None:
    with live_server(make_config(tmp_path)) as server:
        project_id = _board(server, tmp_path, tasks=1)
        created = server.post("/api/tasks", json={"project_id": project_id, "title": "t"})
        assert "etag" not in created.headers
        missing = server.get(f"/api/projects/{uuid.uuid4()}", headers={"If-None-Match": "*"})
        assert missing.status_code == 404 and "etag" not in missing.headers
        # a foreign page is refused before anything else, whatever it sends
        refused = server.get("/api/projects", headers={"Origin": "http://evil.example", "If-None-Match": "*"})
        assert refused.status_code == 403 and refused.json()["success"] is False
        rebound = server.get("/api/projects", headers={"Host": "evil.example", "If-None-Match": "*"})
        assert rebound.status_code == 403


def test_etag_matching_rules() -> None:
    assert matches('"a"', '"a"') and matches('W/"a"', '"a"') and matches("*", '"a"')
    assert matches(' "b" , "a" ', '"a"')
    assert not matches('"b"', '"a"') and not matches("", '"a"') and not matches("a", '"a"')


# --- serialisation ---------------------------------------------------------------------------------


def test_stored_values_format_like_parsed_ones() -> None:
    value = uuid.uuid4()
    assert uid(value.hex) == str(value) == uid(value) == uid(str(value))
    assert uid(value.hex.upper()) == str(value)  # not the stored shape: parsed
    with pytest.raises(ValueError):
        uid("g" * 32)
    assert ts("2025-11-12 03:04:05.678901") == "2025-11-12T03:04:05.678Z"
    assert ts("2025-11-12 03:04:05.000000") == "2025-11-12T03:04:05.000Z"
    assert ts("2025-11-12T03:04:05.678901+02:00") == "2025-11-12T01:04:05.678Z"  # any other shape: parsed
    assert ts("2025-11-12 03:04:05") == "2025-11-12T03:04:05.000Z"


def test_json_media_falls_back_where_orjson_refuses() -> None:
    assert dumps({"a": [1, None, "é"]}) == '{"a":[1,null,"é"]}'.encode()
    assert dumps({1: 2}) == b'{"1":2}'
    assert dumps({"big": 2**70}) == b'{"big": 1180591620717411303424}'


def test_board_rows_match_the_model_path(database_url: str) -> None:
    """The SQLite one-value path and the row path give the same board, in the same order."""
    database = Database.from_url(database_url)
    database.migrate()
    try:
        with database.connection():
            project = Project.create(name="p", git_repo_path="/r/p")
            same_time = "2025-01-01 00:00:00.000000"
            created = [Task.create(project=project, title=f"t{i}", description='d\n"q"') for i in range(5)]
            for task in created[:3]:
                Task.update(created_at=same_time).where(Task.id == task.id).execute()
            attempt = TaskAttempt.create(task=created[0], executor="CODEX", branch="b")
            ExecutionProcess.create(
                task_attempt=attempt, run_reason="codingagent", status="running", executor_action={}
            )
            board = queries.tasks_with_status(project.id)
            expected: list[dict[str, Any]] = []
            ordered = Task.select().where(Task.project == project.id)
            for task in ordered.order_by(Task.created_at.desc(), Task.id.desc()):  # the model path's order
                one = queries.task_with_status(task.id)
                assert one is not None
                expected.append(one)
        assert board == expected
        assert [t["title"] for t in board][:2] == ["t4", "t3"]
        flags = {t["title"]: (t["has_in_progress_attempt"], t["executor"]) for t in board}
        assert flags["t0"] == (True, "CODEX") and flags["t1"] == (False, "")
        assert board[0]["description"] == 'd\n"q"'
    finally:
        database.close_all()


# --- the connection pool ---------------------------------------------------------------------------


def test_connections_are_reused_and_orphans_reclaimed(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite:///{tmp_path / 'p.db'}")
    database.migrate()
    database.close()
    with database.connection():
        first = database.db.connection()
    with database.connection():
        assert database.db.connection() is first  # handed back, taken again: no reopen
    held: list[Any] = []

    def leaves_it_open() -> None:  # a thread that queries without connection(): peewee connects lazily
        Project.select().count()
        held.append(database.db.connection())

    thread = threading.Thread(target=leaves_it_open)
    thread.start()
    thread.join()
    pool: Any = database.db
    assert id(held[0]) in pool._in_use
    with database.connection():  # the next checkout closes what the dead thread held
        assert id(held[0]) not in pool._in_use
    with pytest.raises(sqlite3.ProgrammingError):
        held[0].execute("SELECT 1")
    database.close_all()
    with pytest.raises(sqlite3.ProgrammingError):
        first.execute("SELECT 1")
