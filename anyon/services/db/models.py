"""Peewee models for every table of the API spec §3, and ``ALL_MODELS``: these and the accounts' tables.

The models are declared unbound (``database = None``): a :class:`~anyon.services.db.database.Database` binds
them to its peewee database when it is opened, so nothing here is a module-level connection. The schema a
database actually has is created by the versioned migrations (``migrations.py``), never by ``create_tables``
at start-up; the models describe the latest schema and a test checks they agree.

The column types (UUID ids, UTC timestamps, JSON text), the base model and the allowed values of the
status columns are in ``columns.py``. Execution logs are append-only chunk rows (``ExecutionProcessLog``),
never one growing row.

New rows: the UUID primary key has a default, so a fresh instance already "has" a primary key and a plain
``save()`` would issue an UPDATE. Use ``Model.create(...)`` or ``save(force_insert=True)`` to insert.

The spec tables stay in one module: they reference one another both ways (tasks ↔ task_attempts, drafts →
execution_processes), their extra indexes are declared after all of them, and ``ALL_MODELS`` is the one
list the database binds and the migration test compares. The accounts of a team server are in
``account_models``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

import peewee as pw

from anyon.services.db.account_models import ProjectMember, User, UserToken
from anyon.services.db.columns import (
    DRAFT_TYPES,
    LOG_KINDS,
    MERGE_TYPES,
    PR_STATUSES,
    PROCESS_STATUSES,
    RUN_REASONS,
    TASK_STATUSES,
    BaseModel,
    JsonTextField,
    UtcDateTimeField,
    in_check,
    in_sql,
    utc_now,
)


class Project(BaseModel):
    user_id = pw.TextField(null=True)
    name = pw.TextField()
    git_repo_path = pw.TextField()
    setup_script = pw.TextField(null=True, default="")
    dev_script = pw.TextField(null=True, default="")
    cleanup_script = pw.TextField(null=True, default="")
    copy_files = pw.TextField(null=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "projects"


class Task(BaseModel):
    project_id: uuid.UUID  # raw ids of the foreign keys (declared for type checkers)
    parent_task_attempt_id: uuid.UUID | None
    project = pw.ForeignKeyField(Project, column_name="project_id", on_delete="CASCADE", index=False)
    title = pw.TextField()
    description = pw.TextField(null=True)
    status = pw.TextField(default="todo", constraints=[in_check("status", TASK_STATUSES)])
    # Deferred: task_attempts is declared below. SET NULL (not the reference's "no action, nulled by
    # code"): deleting an attempt can then never fail on, or dangle from, the subtasks it spawned.
    parent_task_attempt = pw.DeferredForeignKey(
        "TaskAttempt", column_name="parent_task_attempt", null=True, on_delete="SET NULL", index=False
    )
    user_id = pw.TextField(null=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "tasks"


class TaskAttempt(BaseModel):
    task_id: uuid.UUID
    task = pw.ForeignKeyField(Task, column_name="task_id", on_delete="CASCADE", index=False)
    executor = pw.TextField(null=True)
    target_branch = pw.TextField(default="main")
    worktree_deleted = pw.BooleanField(default=False)
    setup_completed_at = UtcDateTimeField(null=True)
    container_ref = pw.TextField(null=True)
    branch = pw.TextField(default="main")
    user_id = pw.TextField(null=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "task_attempts"


class ExecutionProcess(BaseModel):
    task_attempt_id: uuid.UUID
    task_attempt = pw.ForeignKeyField(
        TaskAttempt, column_name="task_attempt_id", on_delete="CASCADE", index=False
    )
    status = pw.TextField(default="running", constraints=[in_check("status", PROCESS_STATUSES)])
    exit_code = pw.BigIntegerField(null=True)
    started_at = UtcDateTimeField(default=utc_now)
    completed_at = UtcDateTimeField(null=True)
    run_reason = pw.TextField(default="setupscript", constraints=[in_check("run_reason", RUN_REASONS)])
    executor_action = JsonTextField(default="")
    # A plain column (the reference used a generated one): kept in step with executor_action by save()
    # and create(), indexed for "newest coding-agent process of an attempt" lookups.
    executor_action_type = pw.TextField(null=True)
    dropped = pw.BooleanField(default=False)
    after_head_commit = pw.TextField(null=True)
    before_head_commit = pw.TextField(null=True)
    user_id = pw.TextField(null=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "execution_processes"

    @staticmethod
    def action_type_of(action: Any) -> str | None:
        """``action.typ.type`` of an ExecutorAction, or None if it has none."""
        if isinstance(action, str):
            try:
                action = json.loads(action)
            except ValueError:
                return None
        if isinstance(action, dict):
            typ = action.get("typ")
            if isinstance(typ, dict) and isinstance(typ.get("type"), str):
                return str(typ["type"])
        return None

    @classmethod
    def create(cls, **query: Any) -> ExecutionProcess:
        if "executor_action" in query and "executor_action_type" not in query:
            query["executor_action_type"] = cls.action_type_of(query["executor_action"])
        return super().create(**query)

    def save(self, force_insert: bool = False, only: Any = None) -> int | bool:
        self.executor_action_type = self.action_type_of(self.executor_action)
        if only is not None:
            only = [*only, ExecutionProcess.executor_action_type]
        return super().save(force_insert=force_insert, only=only)


class ExecutionProcessLog(pw.Model):
    """One appended chunk of a process's output. Rows are only ever inserted (spec §8)."""

    execution_id: uuid.UUID

    id = pw.BigAutoField()
    execution = pw.ForeignKeyField(
        ExecutionProcess, column_name="execution_id", on_delete="CASCADE", index=False
    )
    seq = pw.IntegerField()  # 1, 2, 3 … per execution, the read cursor
    kind = pw.TextField(constraints=[in_check("kind", LOG_KINDS)])
    content = pw.TextField()
    byte_size = pw.IntegerField()
    inserted_at = UtcDateTimeField(default=utc_now)

    class Meta:
        database = None
        table_name = "execution_process_logs"
        indexes = ((("execution_id", "seq"), True), (("inserted_at",), False))


class ExecutorSession(BaseModel):
    task_attempt_id: uuid.UUID
    execution_process_id: uuid.UUID
    task_attempt = pw.ForeignKeyField(TaskAttempt, column_name="task_attempt_id", on_delete="CASCADE")
    execution_process = pw.ForeignKeyField(
        ExecutionProcess, column_name="execution_process_id", on_delete="CASCADE"
    )
    session_id = pw.TextField(null=True, index=True)
    prompt = pw.TextField(null=True)
    summary = pw.TextField(null=True)
    user_id = pw.TextField(null=True, index=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "executor_sessions"


class Merge(BaseModel):
    task_attempt_id: uuid.UUID
    task_attempt = pw.ForeignKeyField(TaskAttempt, column_name="task_attempt_id", on_delete="CASCADE")
    merge_type = pw.TextField(constraints=[in_check("merge_type", MERGE_TYPES)])
    merge_commit = pw.TextField(null=True)
    pr_number = pw.BigIntegerField(null=True)
    pr_url = pw.TextField(null=True)
    pr_status = pw.TextField(
        null=True, constraints=[pw.Check("pr_status IS NULL OR " + in_sql("pr_status", PR_STATUSES))]
    )
    pr_merged_at = UtcDateTimeField(null=True)
    pr_merge_commit_sha = pw.TextField(null=True)
    target_branch_name = pw.TextField()
    user_id = pw.TextField(null=True)
    created_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "merges"
        constraints: ClassVar[list[pw.SQL]] = [
            pw.SQL(
                "CHECK ((merge_type = 'direct' AND merge_commit IS NOT NULL AND pr_number IS NULL"
                " AND pr_url IS NULL AND pr_status IS NULL)"
                " OR (merge_type = 'pr' AND merge_commit IS NULL AND pr_number IS NOT NULL"
                " AND pr_url IS NOT NULL AND pr_status IS NOT NULL))"
            )
        ]


class Draft(BaseModel):
    task_attempt_id: uuid.UUID
    retry_process_id: uuid.UUID | None
    task_attempt = pw.ForeignKeyField(
        TaskAttempt, column_name="task_attempt_id", on_delete="CASCADE", index=False
    )
    draft_type = pw.TextField(constraints=[in_check("draft_type", DRAFT_TYPES)])
    retry_process = pw.ForeignKeyField(
        ExecutionProcess, column_name="retry_process_id", null=True, on_delete="CASCADE"
    )
    prompt = pw.TextField(default="")
    queued = pw.BooleanField(default=False)
    sending = pw.BooleanField(default=False)
    version = pw.BigIntegerField(default=0)
    variant = pw.TextField(null=True)
    image_ids = JsonTextField(null=True)  # JSON array of uuid strings
    user_id = pw.TextField(null=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "drafts"
        indexes = ((("task_attempt_id", "draft_type"), True),)


class Image(BaseModel):
    file_path = pw.TextField()
    original_name = pw.TextField()
    mime_type = pw.TextField(null=True)
    size_bytes = pw.BigIntegerField()
    hash = pw.TextField(unique=True)
    user_id = pw.TextField(null=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "images"


class TaskImage(BaseModel):
    task_id: uuid.UUID
    image_id: uuid.UUID
    task = pw.ForeignKeyField(Task, column_name="task_id", on_delete="CASCADE", index=False)
    image = pw.ForeignKeyField(Image, column_name="image_id", on_delete="CASCADE")
    created_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "task_images"
        indexes = ((("task_id", "image_id"), True),)


class Tag(BaseModel):
    tag_name = pw.TextField(constraints=[pw.Check("replace(tag_name, ' ', '') = tag_name")])
    content = pw.TextField(constraints=[pw.Check("content <> ''")])
    user_id = pw.TextField(null=True, index=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "tags"


class Secret(BaseModel):
    """Encrypted secrets (the blob is sealed by whoever stores it; this table only keeps bytes)."""

    user_id = pw.TextField()
    provider = pw.TextField()
    name = pw.TextField()
    key_version = pw.IntegerField(default=1)
    secret_blob = pw.BlobField()
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "secrets"
        indexes = ((("user_id", "provider", "name"), True),)


# Indexes of spec §3 that need a sort order, an expression or a filter.
Project.add_index(
    pw.SQL(
        "CREATE UNIQUE INDEX IF NOT EXISTS projects_user_path"
        " ON projects (COALESCE(user_id, ''), git_repo_path)"
    )
)
Task.add_index(Task.index(Task.project, Task.created_at.desc(), name="tasks_project_created"))
Task.add_index(Task.index(Task.project, Task.user_id, name="tasks_project_user"))
Task.add_index(Task.index(Task.parent_task_attempt, name="tasks_parent_task_attempt"))
Task.add_index(Task.index(Task.user_id, name="tasks_user_id"))
TaskAttempt.add_index(
    TaskAttempt.index(TaskAttempt.task, TaskAttempt.created_at.desc(), name="task_attempts_task_created")
)
TaskAttempt.add_index(TaskAttempt.index(TaskAttempt.created_at.desc(), name="task_attempts_created"))
TaskAttempt.add_index(TaskAttempt.index(TaskAttempt.user_id, name="task_attempts_user_id"))
ExecutionProcess.add_index(ExecutionProcess.index(ExecutionProcess.status, name="execution_processes_status"))
ExecutionProcess.add_index(
    ExecutionProcess.index(ExecutionProcess.run_reason, name="execution_processes_run_reason")
)
ExecutionProcess.add_index(
    ExecutionProcess.index(
        ExecutionProcess.task_attempt, ExecutionProcess.created_at, name="execution_processes_attempt_created"
    )
)
ExecutionProcess.add_index(
    ExecutionProcess.index(
        ExecutionProcess.task_attempt,
        ExecutionProcess.executor_action_type,
        ExecutionProcess.created_at.desc(),
        name="execution_processes_attempt_type_created",
    )
)
ExecutionProcess.add_index(
    ExecutionProcess.index(ExecutionProcess.user_id, name="execution_processes_user_id")
)
Merge.add_index(
    pw.SQL(
        "CREATE INDEX IF NOT EXISTS merges_open_pr ON merges (task_attempt_id, pr_status)"
        " WHERE merge_type = 'pr' AND pr_status = 'open'"
    )
)
Merge.add_index(Merge.index(Merge.task_attempt, Merge.created_at.desc(), name="merges_attempt_created"))

ALL_MODELS: tuple[type[pw.Model], ...] = (
    Project,
    Task,
    TaskAttempt,
    ExecutionProcess,
    ExecutionProcessLog,
    ExecutorSession,
    Merge,
    Draft,
    Image,
    TaskImage,
    Tag,
    Secret,
    User,
    UserToken,
    ProjectMember,
)
