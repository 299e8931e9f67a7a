"""What the schema itself refuses or cleans up: enum CHECKs, unique keys, cascades, stored value types."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import peewee as pw
import pytest
import test_db_support
from test_db_support import make_chain

from anyon.services.db import Database, queries
from anyon.services.db.columns import parse_uuid
from anyon.services.db.models import (
    Draft,
    ExecutionProcess,
    ExecutionProcessLog,
    ExecutorSession,
    Image,
    Merge,
    Project,
    Secret,
    Tag,
    Task,
    TaskAttempt,
    TaskImage,
)
from anyon.services.logs.logstore import LogStore

# fixtures shared by every DB test module (SQLite and PostgreSQL)
database = test_db_support.database
migrated = test_db_support.migrated


def _rejected(database: Database, make: Callable[[], Any]) -> None:
    """``make`` violates a constraint: the database refuses it and leaves nothing behind."""
    with pytest.raises(pw.IntegrityError), database.atomic():
        make()


def test_enum_values_are_checked(migrated: Database) -> None:
    _project, task, attempt, process = make_chain()
    _rejected(migrated, lambda: Task.create(project=task.project_id, title="x", status="Todo"))
    _rejected(migrated, lambda: Task.create(project=task.project_id, title="x", status="in_progress"))
    _rejected(migrated, lambda: ExecutionProcess.create(task_attempt=attempt, status="stopped"))
    _rejected(migrated, lambda: ExecutionProcess.create(task_attempt=attempt, run_reason="codingAgent"))
    _rejected(migrated, lambda: Draft.create(task_attempt=attempt, draft_type="followup"))
    _rejected(
        migrated,
        lambda: Merge.create(
            task_attempt=attempt, merge_type="squash", merge_commit="abc", target_branch_name="main"
        ),
    )
    _rejected(
        migrated,
        lambda: Merge.create(
            task_attempt=attempt,
            merge_type="pr",
            pr_number=1,
            pr_url="u",
            pr_status="unknown",
            target_branch_name="main",
        ),
    )
    _rejected(
        migrated,
        lambda: ExecutionProcessLog.create(execution=process, seq=1, kind="STDOUT", content="x", byte_size=1),
    )
    # every spelling of the spec is accepted
    for status in ("todo", "inprogress", "inreview", "done", "cancelled"):
        Task.create(project=task.project_id, title=status, status=status)
    for reason in ("setupscript", "cleanupscript", "codingagent", "devserver"):
        for status in ("running", "completed", "failed", "killed"):
            ExecutionProcess.create(task_attempt=attempt, run_reason=reason, status=status)
    assert Task.select().count() == 6


def test_merge_rows_have_the_shape_of_their_type(migrated: Database) -> None:
    _p, _t, attempt, _e = make_chain()
    _rejected(
        migrated, lambda: Merge.create(task_attempt=attempt, merge_type="direct", target_branch_name="main")
    )
    _rejected(
        migrated,
        lambda: Merge.create(
            task_attempt=attempt,
            merge_type="direct",
            merge_commit="abc",
            pr_number=3,
            target_branch_name="main",
        ),
    )
    _rejected(
        migrated,
        lambda: Merge.create(
            task_attempt=attempt,
            merge_type="pr",
            merge_commit="abc",
            pr_number=3,
            pr_url="u",
            pr_status="open",
            target_branch_name="main",
        ),
    )
    Merge.create(task_attempt=attempt, merge_type="direct", merge_commit="abc", target_branch_name="main")
    Merge.create(
        task_attempt=attempt,
        merge_type="pr",
        pr_number=3,
        pr_url="u",
        pr_status="open",
        target_branch_name="main",
    )
    assert Merge.select().count() == 2


def test_tags_refuse_spaces_and_empty_content(migrated: Database) -> None:
    _rejected(migrated, lambda: Tag.create(tag_name="two words", content="x"))
    _rejected(migrated, lambda: Tag.create(tag_name="ok", content=""))
    Tag.create(tag_name="ok_name", content="body with spaces")
    assert Tag.select().count() == 1


def test_project_path_unique_per_user_including_unowned(migrated: Database) -> None:
    Project.create(name="a", git_repo_path="/r/x")
    _rejected(migrated, lambda: Project.create(name="b", git_repo_path="/r/x"))
    Project.create(name="a", git_repo_path="/r/x", user_id="u1")
    _rejected(migrated, lambda: Project.create(name="b", git_repo_path="/r/x", user_id="u1"))
    Project.create(name="c", git_repo_path="/r/x", user_id="u2")
    assert Project.select().count() == 3
    assert queries.project_path_in_use("/r/x")
    assert queries.project_path_in_use("/r/x", "u1")
    assert not queries.project_path_in_use("/r/y", "u1")
    assert not queries.project_path_in_use("/r/x", "u3")
    own = Project.get((Project.user_id == "u1") & (Project.git_repo_path == "/r/x"))
    assert not queries.project_path_in_use("/r/x", "u1", exclude_id=own.id)


def test_other_unique_keys(migrated: Database) -> None:
    _p, task, attempt, process = make_chain()
    Draft.create(task_attempt=attempt, draft_type="follow_up")
    _rejected(migrated, lambda: Draft.create(task_attempt=attempt, draft_type="follow_up"))
    Draft.create(task_attempt=attempt, draft_type="retry", retry_process=process)
    image = Image.create(file_path="abc.png", original_name="a.png", size_bytes=3, hash="h1")
    _rejected(
        migrated, lambda: Image.create(file_path="d.png", original_name="d.png", size_bytes=3, hash="h1")
    )
    TaskImage.create(task=task, image=image)
    _rejected(migrated, lambda: TaskImage.create(task=task, image=image))
    Secret.create(user_id="u", provider="github", name="oauth_token", secret_blob=b"\x00\x01")
    _rejected(
        migrated, lambda: Secret.create(user_id="u", provider="github", name="oauth_token", secret_blob=b"x")
    )
    assert bytes(Secret.get().secret_blob) == b"\x00\x01"


def test_foreign_keys_are_enforced(migrated: Database) -> None:
    _rejected(migrated, lambda: Task.create(project=uuid.uuid4(), title="orphan"))
    _rejected(migrated, lambda: TaskAttempt.create(task=uuid.uuid4()))


def test_deleting_a_project_cascades_to_everything_below(migrated: Database) -> None:
    project, task, attempt, process = make_chain()
    other_project, other_task, *_ = make_chain()
    ExecutorSession.create(task_attempt=attempt, execution_process=process, session_id="s")
    Merge.create(task_attempt=attempt, merge_type="direct", merge_commit="abc", target_branch_name="main")
    Draft.create(task_attempt=attempt, draft_type="retry", retry_process=process)
    image = Image.create(file_path="abc.png", original_name="a.png", size_bytes=3, hash="h")
    TaskImage.create(task=task, image=image)
    LogStore(migrated).append_many(process.id, [("stdout", "a"), ("stderr", "b")])

    Project.delete().where(Project.id == project.id).execute()

    for model in (Task, TaskAttempt, ExecutionProcess, ExecutorSession, Merge, Draft, TaskImage):
        assert model.select().where(model.id.in_([task.id, attempt.id, process.id])).count() == 0, model
    assert ExecutionProcessLog.select().count() == 0
    assert ExecutorSession.select().count() == Merge.select().count() == Draft.select().count() == 0
    assert TaskImage.select().count() == 0
    assert Image.select().count() == 1  # images are shared, not owned by a task
    assert Task.select().where(Task.id == other_task.id).count() == 1
    assert Project.get_by_id(other_project.id).name == "demo"


def test_deleting_a_task_cascades_and_deleting_a_parent_attempt_nulls_subtasks(migrated: Database) -> None:
    project, task, attempt, process = make_chain()
    child = Task.create(project=project, title="subtask", parent_task_attempt=attempt)
    assert Task.get_by_id(child.id).parent_task_attempt_id == attempt.id
    LogStore(migrated).append(process.id, "stdout", "hello")

    task.delete_instance()

    assert TaskAttempt.select().count() == 0
    assert ExecutionProcess.select().count() == 0
    assert ExecutionProcessLog.select().count() == 0
    survivor = Task.get_by_id(child.id)
    assert survivor.parent_task_attempt_id is None  # ON DELETE SET NULL


def test_timestamps_are_aware_utc_and_round_trip(migrated: Database) -> None:
    project = Project.create(name="p", git_repo_path="/p")
    loaded = Project.get_by_id(project.id)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == dt.timedelta(0)
    assert loaded.created_at == project.created_at
    plus_two = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(2025, 11, 12, 5, 4, 5, 678901, tzinfo=plus_two)
    naive = dt.datetime(2025, 11, 12, 3, 4, 5, 678901)  # naive means UTC
    a = Project.create(name="a", git_repo_path="/a", created_at=moment)
    b = Project.create(name="b", git_repo_path="/b", created_at=naive)
    assert Project.get_by_id(a.id).created_at == dt.datetime(2025, 11, 12, 3, 4, 5, 678901, tzinfo=dt.UTC)
    assert Project.get_by_id(b.id).created_at == Project.get_by_id(a.id).created_at
    # comparisons in SQL use the same representation, so they order by time
    later = Project.select().where(Project.created_at > dt.datetime(2025, 11, 12, 3, 4, 5, tzinfo=dt.UTC))
    assert {p.name for p in later} == {"a", "b", "p"}
    earlier = Project.select().where(Project.created_at < dt.datetime(2025, 11, 12, 4, 0, tzinfo=plus_two))
    assert [p.name for p in earlier] == []


def test_ids_are_uuids_and_saving_bumps_updated_at(migrated: Database) -> None:
    _p, task, _a, _e = make_chain()
    loaded = Task.get_by_id(task.id)
    assert isinstance(loaded.id, uuid.UUID)
    assert isinstance(loaded.project_id, uuid.UUID)
    assert Task.get_or_none(Task.id == str(task.id)) is not None
    before = loaded.updated_at
    loaded.title = "renamed"
    loaded.save()
    again = Task.get_by_id(task.id)
    assert again.title == "renamed"
    assert again.updated_at > before
    assert again.created_at == task.created_at


def test_executor_action_type_follows_the_action(migrated: Database) -> None:
    _p, _t, attempt, process = make_chain()
    assert ExecutionProcess.get_by_id(process.id).executor_action_type == "ScriptRequest"
    process.executor_action = {
        "typ": {"type": "CodingAgentInitialRequest", "prompt": "p"},
        "next_action": None,
    }
    process.save()
    assert ExecutionProcess.get_by_id(process.id).executor_action_type == "CodingAgentInitialRequest"
    raw = ExecutionProcess.create(task_attempt=attempt, executor_action="not json {")
    stored = ExecutionProcess.get_by_id(raw.id)
    assert stored.executor_action == "not json {"
    assert stored.executor_action_type is None


def test_parse_uuid() -> None:
    value = uuid.uuid4()
    assert parse_uuid(str(value)) == value
    assert parse_uuid(value) is value
    assert parse_uuid("nope") is None
    assert parse_uuid(None) is None
    assert parse_uuid(42) is None
