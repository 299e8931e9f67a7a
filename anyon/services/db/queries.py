"""Queries several services share: the kanban status flags, attempt and process lists, start-up repair.

All functions use the models' bound database (see ``database.py``) and are synchronous; callers in async
code run them in a worker thread. The TaskWithAttemptStatus flags are computed in one SELECT with
correlated subqueries that walk the (task_id, created_at) / (task_attempt_id, created_at) indexes, so a
board of N tasks costs one query, not N+1.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import peewee as pw

from anyon.services.db.columns import ATTEMPT_RUN_REASONS, utc_now
from anyon.services.db.models import ExecutionProcess, Project, Task, TaskAttempt
from anyon.services.db.serialize import JsonDict, task_with_status_json

IdLike = uuid.UUID | str
#: The names of the computed columns of a status query, after the task's own columns.
_STATUS_NAMES = ("has_in_progress", "last_status", "last_executor")


def _status_columns() -> list[Any]:
    """The three computed columns of TaskWithAttemptStatus, correlated with the outer ``Task``."""
    ta_running = TaskAttempt.alias("ta_running")
    ep_running = ExecutionProcess.alias("ep_running")
    in_progress = pw.fn.EXISTS(
        ep_running.select(pw.SQL("1"))
        .join(ta_running, on=(ep_running.task_attempt == ta_running.id))
        .where(
            (ta_running.task == Task.id)
            & (ep_running.status == "running")
            & (ep_running.run_reason.in_(ATTEMPT_RUN_REASONS))
        )
    )
    ta_last = TaskAttempt.alias("ta_last")
    ep_last = ExecutionProcess.alias("ep_last")
    last_status = (
        ep_last.select(ep_last.status)
        .join(ta_last, on=(ep_last.task_attempt == ta_last.id))
        .where((ta_last.task == Task.id) & (ep_last.run_reason.in_(ATTEMPT_RUN_REASONS)))
        .order_by(ep_last.created_at.desc(), ep_last.id.desc())
        .limit(1)
    )
    ta_exec = TaskAttempt.alias("ta_exec")
    executor = (
        ta_exec.select(ta_exec.executor)
        .where(ta_exec.task == Task.id)
        .order_by(ta_exec.created_at.desc(), ta_exec.id.desc())
        .limit(1)
    )
    has_in_progress, last, last_executor = _STATUS_NAMES
    return [in_progress.alias(has_in_progress), last_status.alias(last), executor.alias(last_executor)]


def _with_status(row: dict[str, Any]) -> JsonDict:
    return task_with_status_json(
        row,
        has_in_progress_attempt=bool(row["has_in_progress"]),
        last_attempt_failed=row["last_status"] in ("failed", "killed"),
        executor=row["last_executor"],
    )


def _status_query() -> Any:
    return Task.select(Task, *_status_columns())


def _status_rows(query: Any) -> list[JsonDict]:
    """The rows of a status query, keyed by column name, with the values as the database stores them.

    The values skip peewee's per-field conversion (UUID and datetime objects built, then formatted again):
    on a board of 1,000 tasks that conversion cost five times the query. ``task_row_json`` formats the
    stored values directly. On SQLite the rows come back as one JSON text (:func:`_sqlite_rows`).
    """
    database = Task._meta.database
    names = [field.column_name for field in Task._meta.sorted_fields] + list(_STATUS_NAMES)
    if isinstance(database, pw.SqliteDatabase):
        return _sqlite_rows(database, query, names)
    cursor = database.execute(query)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _sqlite_rows(database: pw.SqliteDatabase, query: Any, names: list[str]) -> list[JsonDict]:
    """SQLite: the whole result as one ``json_group_array`` value, decoded at once.

    Python's sqlite3 releases the GIL around every row it steps; under load, with the event loop and
    other workers wanting the GIL, each release could cost a thread switch, so a 1,000-row board took
    hundreds of milliseconds. One row means one release. ``json_group_array`` keeps the order of the
    subquery in practice, but SQLite does not promise it, so the rows are sorted again here by the same
    keys (the stored text, compared as SQLite compares it).
    """
    sql, params = query.sql()
    columns = ", ".join(f'"{name}"' for name in names)
    aggregate = f"SELECT json_group_array(json_array({columns})) FROM ({sql})"
    cursor = database.execute_sql(aggregate, params)  # type: ignore[no-untyped-call]
    (text,) = cursor.fetchone()
    rows = [dict(zip(names, values, strict=True)) for values in orjson.loads(text)]
    rows.sort(key=lambda row: (row["created_at"], row["id"]), reverse=True)
    return rows


def tasks_with_status(project_id: IdLike) -> list[JsonDict]:
    """TaskWithAttemptStatus of every task of the project, newest ``created_at`` first (one query)."""
    query = _status_query().where(Task.project == project_id).order_by(Task.created_at.desc(), Task.id.desc())
    return [_with_status(row) for row in _status_rows(query)]


def task_with_status(task_id: IdLike) -> JsonDict | None:
    """TaskWithAttemptStatus of one task, or None when it does not exist."""
    rows = _status_rows(_status_query().where(Task.id == task_id).limit(1))
    return _with_status(rows[0]) if rows else None


def attempts_for_task(task_id: IdLike | None) -> list[TaskAttempt]:
    """The attempts of a task (all attempts when ``task_id`` is None), newest first."""
    query = TaskAttempt.select()
    if task_id is not None:
        query = query.where(TaskAttempt.task == task_id)
    return list(query.order_by(TaskAttempt.created_at.desc(), TaskAttempt.id.desc()))


def processes_for_attempt(attempt_id: IdLike, show_soft_deleted: bool = False) -> list[ExecutionProcess]:
    """The execution processes of an attempt, oldest first; ``dropped`` ones only if asked for."""
    query = ExecutionProcess.select().where(ExecutionProcess.task_attempt == attempt_id)
    if not show_soft_deleted:
        query = query.where(ExecutionProcess.dropped == False)  # noqa: E712 - SQL comparison
    return list(query.order_by(ExecutionProcess.created_at, ExecutionProcess.id))


def has_running_process(task_id: IdLike) -> bool:
    """Whether any attempt of the task has a process still ``running`` (any run reason, dev servers too)."""
    return bool(
        ExecutionProcess.select(pw.SQL("1"))
        .join(TaskAttempt, on=(ExecutionProcess.task_attempt == TaskAttempt.id))
        .where((TaskAttempt.task == task_id) & (ExecutionProcess.status == "running"))
        .exists()
    )


def project_path_in_use(
    git_repo_path: str, user_id: str | None = None, exclude_id: IdLike | None = None
) -> bool:
    """Whether ``user_id`` (None = the unowned rows) already has a project at ``git_repo_path``.

    The database enforces the same rule with a unique index on (COALESCE(user_id, ''), git_repo_path); this
    check lets the API answer the spec's soft error before trying the insert.
    """
    query = Project.select(pw.SQL("1")).where(Project.git_repo_path == git_repo_path)
    query = query.where(Project.user_id.is_null() if user_id is None else (Project.user_id == user_id))
    if exclude_id is not None:
        query = query.where(Project.id != exclude_id)
    return bool(query.exists())


def mark_running_processes_failed_at_startup(
    head_commit_of: Callable[[TaskAttempt], str | None] | None = None,
) -> int:
    """Spec §4.1 orphan cleanup: processes left ``running`` by a previous run become ``failed``.

    No exit code is recorded (nothing observed one). Tasks whose setup, cleanup or coding-agent process was
    cut off are set to ``inreview``. ``head_commit_of(attempt)``, when given, supplies the worktree HEAD to
    record as ``after_head_commit`` (the git layer owns that; a None or an exception leaves it unset).
    Returns how many processes were repaired. Runs in one transaction.
    """
    db = ExecutionProcess._meta.database
    with db.atomic():
        rows: Any = (
            ExecutionProcess.select(
                ExecutionProcess.id,
                ExecutionProcess.run_reason,
                TaskAttempt.task.alias("owner_task"),
                TaskAttempt.id.alias("attempt_id"),
            )
            .join(TaskAttempt, on=(ExecutionProcess.task_attempt == TaskAttempt.id))
            .where(ExecutionProcess.status == "running")
            .dicts()
        )
        orphans: list[dict[str, Any]] = list(rows)
        if not orphans:
            return 0
        now = utc_now()
        ids = [row["id"] for row in orphans]
        (
            ExecutionProcess.update(status="failed", exit_code=None, completed_at=now, updated_at=now)
            .where(ExecutionProcess.id.in_(ids) & (ExecutionProcess.status == "running"))
            .execute()
        )
        if head_commit_of is not None:
            _record_after_heads(orphans, head_commit_of)
        task_ids = {row["owner_task"] for row in orphans if row["run_reason"] in ATTEMPT_RUN_REASONS}
        if task_ids:
            Task.update(status="inreview", updated_at=now).where(Task.id.in_(list(task_ids))).execute()
        return len(ids)


def settle_idle_tasks() -> int:
    """Tasks left ``inprogress`` by their attempts with nothing running any more (e.g. an Engine outage
    cut their supervision short) go to ``inreview``. A task put in progress by hand, whose attempts never
    ran a setup, agent or cleanup process, is left alone. Returns how many moved."""
    db = Task._meta.database
    with db.atomic():
        stuck = {row.id for row in Task.select(Task.id).where(Task.status == "inprogress")}
        if not stuck:
            return 0
        ran_rows: Any = (
            ExecutionProcess.select(TaskAttempt.task.alias("task_id"))
            .join(TaskAttempt, on=(ExecutionProcess.task_attempt == TaskAttempt.id))
            .where(TaskAttempt.task.in_(list(stuck)) & ExecutionProcess.run_reason.in_(ATTEMPT_RUN_REASONS))
            .dicts()
        )
        busy_rows: Any = (
            ExecutionProcess.select(TaskAttempt.task.alias("task_id"))
            .join(TaskAttempt, on=(ExecutionProcess.task_attempt == TaskAttempt.id))
            .where(TaskAttempt.task.in_(list(stuck)) & (ExecutionProcess.status == "running"))
            .dicts()
        )
        ran = {row["task_id"] for row in ran_rows}
        busy = {row["task_id"] for row in busy_rows}
        idle = list((stuck & ran) - busy)
        if not idle:
            return 0
        return int(
            Task.update(status="inreview", updated_at=utc_now())
            .where(Task.id.in_(idle) & (Task.status == "inprogress"))
            .execute()
        )


def _record_after_heads(
    orphans: list[dict[str, Any]], head_commit_of: Callable[[TaskAttempt], str | None]
) -> None:
    attempts = {
        a.id: a for a in TaskAttempt.select().where(TaskAttempt.id.in_({r["attempt_id"] for r in orphans}))
    }
    heads: dict[uuid.UUID, str | None] = {}
    for attempt_id, attempt in attempts.items():
        try:
            heads[attempt_id] = head_commit_of(attempt)
        except Exception:  # a missing worktree must not stop the repair of the others
            heads[attempt_id] = None
    for row in orphans:
        head = heads.get(row["attempt_id"])
        if head:
            ExecutionProcess.update(after_head_commit=head).where(ExecutionProcess.id == row["id"]).execute()
