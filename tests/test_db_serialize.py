"""Rows serialize to exactly the JSON shapes of types.md (key sets, value types, formats)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import test_db_support
from test_db_support import make_chain

from anyon.services.db import Database, queries
from anyon.services.db import serialize as s
from anyon.services.db.models import Draft, ExecutionProcess, Image, Merge, Tag

# fixtures shared by every DB test module (SQLite and PostgreSQL)
database = test_db_support.database
migrated = test_db_support.migrated

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _check_formats(obj: dict[str, object], uuids: tuple[str, ...], stamps: tuple[str, ...]) -> None:
    for key in uuids:
        assert isinstance(obj[key], str) and UUID_RE.match(obj[key]), key  # type: ignore[arg-type]
    for key in stamps:
        assert isinstance(obj[key], str) and TS.match(obj[key]), key  # type: ignore[arg-type]
    json.dumps(obj)  # everything is plain JSON


def test_timestamp_format() -> None:
    moment = dt.datetime(2025, 11, 12, 3, 4, 5, 678901, tzinfo=dt.UTC)
    assert s.ts(moment) == "2025-11-12T03:04:05.678Z"
    assert s.ts(moment.astimezone(dt.timezone(dt.timedelta(hours=-5)))) == "2025-11-12T03:04:05.678Z"
    assert s.ts(dt.datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05.000Z"
    assert s.ts(None) is None
    value = uuid.uuid4()
    assert s.uid(value) == str(value)
    assert s.uid(value.hex) == str(value)
    assert s.uid(None) is None


def test_project_task_attempt_shapes(migrated: Database) -> None:
    project, task, attempt, _process = make_chain()
    pj = s.project_json(project)
    assert set(pj) == {
        "id", "name", "git_repo_path", "setup_script", "dev_script", "cleanup_script", "copy_files",
        "created_at", "updated_at",
    }  # fmt: skip
    _check_formats(pj, ("id",), ("created_at", "updated_at"))
    assert "user_id" not in pj

    tj = s.task_json(task)
    assert set(tj) == {
        "id", "project_id", "title", "description", "status", "parent_task_attempt", "created_at",
        "updated_at",
    }  # fmt: skip
    _check_formats(tj, ("id", "project_id"), ("created_at", "updated_at"))
    assert tj["parent_task_attempt"] is None
    assert tj["status"] == "todo"

    aj = s.attempt_json(attempt)
    assert set(aj) == {
        "id", "task_id", "container_ref", "branch", "target_branch", "executor", "worktree_deleted",
        "setup_completed_at", "created_at", "updated_at",
    }  # fmt: skip
    _check_formats(aj, ("id", "task_id"), ("created_at", "updated_at"))
    assert aj["worktree_deleted"] is False
    assert aj["setup_completed_at"] is None
    assert aj["executor"] == "CLAUDE_CODE"

    status = queries.task_with_status(task.id)
    assert status is not None
    assert set(status) == set(tj) | {
        "has_in_progress_attempt",
        "has_merged_attempt",
        "last_attempt_failed",
        "executor",
    }
    assert status["has_merged_attempt"] is False
    assert isinstance(status["has_in_progress_attempt"], bool)
    assert isinstance(status["last_attempt_failed"], bool)


def test_process_shape_and_executor_action(migrated: Database) -> None:
    _p, _t, attempt, process = make_chain()
    action = {
        "typ": {
            "type": "CodingAgentInitialRequest",
            "prompt": "hi",
            "executor_profile_id": {"executor": "CLAUDE_CODE", "variant": "PLAN"},
        },
        "next_action": None,
    }
    row = ExecutionProcess.create(
        task_attempt=attempt, run_reason="codingagent", executor_action=action, exit_code=3
    )
    pj = s.process_json(ExecutionProcess.get_by_id(row.id))
    assert set(pj) == {
        "id", "task_attempt_id", "run_reason", "executor_action", "before_head_commit", "after_head_commit",
        "status", "exit_code", "dropped", "started_at", "completed_at", "created_at", "updated_at",
    }  # fmt: skip
    _check_formats(pj, ("id", "task_attempt_id"), ("started_at", "created_at", "updated_at"))
    assert pj["executor_action"] == action
    assert pj["exit_code"] == 3
    assert pj["dropped"] is False
    assert pj["completed_at"] is None
    assert s.process_json(process)["executor_action"]["typ"]["type"] == "ScriptRequest"


def test_merge_shapes(migrated: Database) -> None:
    _p, _t, attempt, _e = make_chain()
    direct = Merge.create(
        task_attempt=attempt, merge_type="direct", merge_commit="abc123", target_branch_name="main"
    )
    dj = s.merge_json(Merge.get_by_id(direct.id))
    assert dj == {
        "type": "direct",
        "id": str(direct.id),
        "task_attempt_id": str(attempt.id),
        "merge_commit": "abc123",
        "target_branch_name": "main",
        "created_at": dj["created_at"],
    }
    assert TS.match(dj["created_at"])
    merged_at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    pr = Merge.create(
        task_attempt=attempt,
        merge_type="pr",
        pr_number=7,
        pr_url="https://example.invalid/pr/7",
        pr_status="merged",
        pr_merged_at=merged_at,
        pr_merge_commit_sha="def",
        target_branch_name="dev",
    )
    pj = s.merge_json(Merge.get_by_id(pr.id))
    assert set(pj) == {"type", "id", "task_attempt_id", "created_at", "target_branch_name", "pr_info"}
    assert pj["type"] == "pr"
    assert pj["pr_info"] == {
        "number": 7,
        "url": "https://example.invalid/pr/7",
        "status": "merged",
        "merged_at": "2025-01-01T00:00:00.000Z",
        "merge_commit_sha": "def",
    }


def test_tag_image_draft_shapes(migrated: Database) -> None:
    _p, _t, attempt, process = make_chain()
    tag = Tag.create(tag_name="bug", content="Fix the bug")
    tj = s.tag_json(tag)
    assert set(tj) == {"id", "tag_name", "content", "created_at", "updated_at"}
    _check_formats(tj, ("id",), ("created_at", "updated_at"))

    image = Image.create(
        file_path="3f2b_cat.png", original_name="cat.png", mime_type="image/png", size_bytes=10, hash="h"
    )
    ij = s.image_json(Image.get_by_id(image.id))
    assert set(ij) == {
        "id", "file_path", "original_name", "mime_type", "size_bytes", "hash", "created_at", "updated_at"
    }  # fmt: skip
    assert ij["file_path"] == ".vibe-images/3f2b_cat.png"
    assert ij["size_bytes"] == 10

    image_id = uuid.uuid4()
    draft = Draft.create(
        task_attempt=attempt,
        draft_type="retry",
        retry_process=process,
        prompt="again",
        image_ids=[str(image_id)],
    )
    dj = s.draft_json(Draft.get_by_id(draft.id))
    assert dj == {
        "task_attempt_id": str(attempt.id),
        "draft_type": "retry",
        "retry_process_id": str(process.id),
        "prompt": "again",
        "queued": False,
        "variant": None,
        "image_ids": [str(image_id)],
        "version": 0,
    }
    follow = Draft.create(task_attempt=attempt, draft_type="follow_up")
    fj = s.draft_json(Draft.get_by_id(follow.id))
    assert fj["retry_process_id"] is None and fj["image_ids"] is None  # present, null (DraftResponse)
    row = s.draft_row_json(Draft.get_by_id(follow.id))
    assert set(row) == {
        "id", "task_attempt_id", "draft_type", "prompt", "queued", "sending", "variant", "created_at",
        "updated_at", "version",
    }  # fmt: skip
    full = s.draft_row_json(Draft.get_by_id(draft.id))
    assert full["retry_process_id"] == str(process.id)
    assert full["image_ids"] == [str(image_id)]
    assert s.empty_draft_json(attempt.id, "follow_up") == {
        "task_attempt_id": str(attempt.id),
        "draft_type": "follow_up",
        "retry_process_id": None,
        "prompt": "",
        "queued": False,
        "variant": None,
        "image_ids": None,
        "version": 0,
    }
