"""The shared queries: TaskWithAttemptStatus flags (spec §1.4), list orders, start-up repair (spec §4.1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import test_db_support
from test_db_support import make_chain

from anyon.services.db import Database, queries
from anyon.services.db.models import ExecutionProcess, Project, Task, TaskAttempt

# fixtures shared by every DB test module (SQLite and PostgreSQL)
database = test_db_support.database
migrated = test_db_support.migrated

T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def process(attempt: TaskAttempt, minute: int, reason: str, status: str) -> ExecutionProcess:
    return ExecutionProcess.create(
        task_attempt=attempt, run_reason=reason, status=status, created_at=at(minute), executor_action={}
    )


@contextmanager
def count_queries(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []
    original = database.db.execute_sql

    def counting(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(sql)
        return original(sql, params, *args, **kwargs)

    database.db.execute_sql = counting  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del database.db.execute_sql


def test_task_status_flags(migrated: Database) -> None:
    project = Project.create(name="p", git_repo_path="/p")
    idle = Task.create(project=project, title="no attempts", created_at=at(0))
    running = Task.create(project=project, title="running agent", created_at=at(1))
    devonly = Task.create(project=project, title="only a dev server runs", created_at=at(2))
    failed = Task.create(project=project, title="last run failed", created_at=at(3))
    recovered = Task.create(project=project, title="failed then completed", created_at=at(4))
    killed = Task.create(project=project, title="killed, then a dev server", created_at=at(5))

    a = TaskAttempt.create(task=running, executor="CODEX", created_at=at(10))
    process(a, 11, "setupscript", "completed")
    process(a, 12, "codingagent", "running")
    d = TaskAttempt.create(task=devonly, executor="AMP", created_at=at(10))
    process(d, 11, "devserver", "running")
    f = TaskAttempt.create(task=failed, executor="GEMINI", created_at=at(10))
    process(f, 11, "codingagent", "failed")
    r_old = TaskAttempt.create(task=recovered, executor="GEMINI", created_at=at(10))
    process(r_old, 11, "codingagent", "failed")
    r_new = TaskAttempt.create(task=recovered, executor="CLAUDE_CODE", created_at=at(20))
    process(r_new, 21, "codingagent", "completed")
    k = TaskAttempt.create(task=killed, executor="OPENCODE", created_at=at(10))
    process(k, 11, "codingagent", "killed")
    process(k, 12, "devserver", "failed")  # dev servers never count

    other = Project.create(name="other", git_repo_path="/other")
    Task.create(project=other, title="elsewhere")

    with count_queries(migrated) as seen:
        board = queries.tasks_with_status(project.id)
    assert len(seen) == 1  # one SELECT for the whole board, not N+1

    by_title = {t["title"]: t for t in board}
    assert [t["title"] for t in board] == [
        "killed, then a dev server",
        "failed then completed",
        "last run failed",
        "only a dev server runs",
        "running agent",
        "no attempts",
    ]
    flags = {
        title: (
            t["has_in_progress_attempt"],
            t["last_attempt_failed"],
            t["executor"],
            t["has_merged_attempt"],
        )
        for title, t in by_title.items()
    }
    assert flags == {
        "no attempts": (False, False, "", False),
        "running agent": (True, False, "CODEX", False),
        "only a dev server runs": (False, False, "AMP", False),
        "last run failed": (False, True, "GEMINI", False),
        "failed then completed": (False, False, "CLAUDE_CODE", False),
        "killed, then a dev server": (False, True, "OPENCODE", False),
    }
    single = queries.task_with_status(running.id)
    assert single == by_title["running agent"]
    assert queries.task_with_status(idle.id) == by_title["no attempts"]
    assert queries.task_with_status("00000000-0000-0000-0000-000000000000") is None
    assert queries.tasks_with_status(other.id)[0]["title"] == "elsewhere"


def test_attempt_and_process_lists(migrated: Database) -> None:
    _p, task, first, _e = make_chain()
    first.created_at = at(0)
    first.save()
    second = TaskAttempt.create(task=task, executor="AMP", created_at=at(5))
    _p2, other_task, other_attempt, _e2 = make_chain()
    assert [a.id for a in queries.attempts_for_task(task.id)] == [second.id, first.id]
    everything = queries.attempts_for_task(None)
    assert {a.id for a in everything} == {first.id, second.id, other_attempt.id}
    assert queries.attempts_for_task(other_task.id)[0].id == other_attempt.id

    p1 = process(second, 3, "setupscript", "completed")
    p2 = process(second, 1, "codingagent", "completed")
    p3 = ExecutionProcess.create(task_attempt=second, created_at=at(2), dropped=True, status="completed")
    assert [p.id for p in queries.processes_for_attempt(second.id)] == [p2.id, p1.id]
    assert [p.id for p in queries.processes_for_attempt(second.id, show_soft_deleted=True)] == [
        p2.id,
        p3.id,
        p1.id,
    ]


def test_has_running_process_counts_every_run_reason(migrated: Database) -> None:
    _p, task, attempt, proc = make_chain(run_reason="devserver", status="running")
    assert queries.has_running_process(task.id)
    proc.status = "killed"
    proc.save()
    assert not queries.has_running_process(task.id)
    process(attempt, 5, "cleanupscript", "running")
    assert queries.has_running_process(task.id)


def test_startup_repair_fails_orphans_and_puts_tasks_in_review(migrated: Database) -> None:
    _p, agent_task, agent_attempt, agent_proc = make_chain(run_reason="codingagent", status="running")
    _p2, dev_task, _a2, dev_proc = make_chain(run_reason="devserver", status="running")
    _p3, done_task, _a3, done_proc = make_chain(run_reason="codingagent", status="completed")
    agent_task.status = "inprogress"
    agent_task.save()
    dev_task.status = "inprogress"
    dev_task.save()
    done_task.status = "done"
    done_task.save()
    setup = process(agent_attempt, 1, "setupscript", "running")

    assert queries.mark_running_processes_failed_at_startup() == 3

    for proc in (agent_proc, dev_proc, setup):
        row = ExecutionProcess.get_by_id(proc.id)
        assert row.status == "failed"
        assert row.exit_code is None
        assert row.completed_at is not None
    assert ExecutionProcess.get_by_id(done_proc.id).status == "completed"
    assert Task.get_by_id(agent_task.id).status == "inreview"
    assert Task.get_by_id(dev_task.id).status == "inprogress"  # a dev server's task is left alone
    assert Task.get_by_id(done_task.id).status == "done"
    assert queries.mark_running_processes_failed_at_startup() == 0
    assert queries.task_with_status(agent_task.id)["last_attempt_failed"] is True  # type: ignore[index]


def test_startup_repair_settles_tasks_left_in_progress_with_nothing_running(migrated: Database) -> None:
    # an outage ended the agent's supervision (failed) but not the task's status
    _p, stuck, _a, _proc = make_chain(run_reason="codingagent", status="failed")
    _p2, busy, _a2, _proc2 = make_chain(run_reason="codingagent", status="running")
    _p3, by_hand, _a3, _proc3 = make_chain(run_reason="devserver", status="completed")
    for task in (stuck, busy, by_hand):
        task.status = "inprogress"
        task.save()

    assert queries.settle_idle_tasks() == 1
    assert Task.get_by_id(stuck.id).status == "inreview"
    assert Task.get_by_id(busy.id).status == "inprogress"  # still running: untouched
    assert Task.get_by_id(by_hand.id).status == "inprogress"  # no attempt work ran: the user's choice
    assert queries.settle_idle_tasks() == 0


def test_startup_repair_records_the_worktree_head_when_told_how(migrated: Database) -> None:
    _p, _t, attempt, agent_proc = make_chain(run_reason="codingagent", status="running")
    _p2, _t2, broken_attempt, broken_proc = make_chain(run_reason="codingagent", status="running")
    asked: list[object] = []

    def head_of(a: TaskAttempt) -> str | None:
        asked.append(a.id)
        if a.id == broken_attempt.id:
            raise FileNotFoundError("worktree is gone")
        return "0123abcd" * 5

    assert queries.mark_running_processes_failed_at_startup(head_of) == 2
    assert sorted(map(str, asked)) == sorted([str(attempt.id), str(broken_attempt.id)])
    assert ExecutionProcess.get_by_id(agent_proc.id).after_head_commit == "0123abcd" * 5
    assert ExecutionProcess.get_by_id(broken_proc.id).after_head_commit is None
    assert ExecutionProcess.get_by_id(broken_proc.id).status == "failed"
