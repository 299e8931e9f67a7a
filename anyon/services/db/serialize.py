"""Rows → the exact JSON objects of the wire spec (types.md §6 to §13).

One function per wire type, each returning a plain dict with exactly the spec's keys, so that resources and
streams never assemble payloads by hand. UUIDs become lowercase hyphenated strings; timestamps become
RFC 3339 UTC with milliseconds and ``Z`` (``2025-11-12T03:04:05.678Z``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any

from anyon.services.db.models import (
    Draft,
    ExecutionProcess,
    Image,
    Merge,
    Project,
    Tag,
    Task,
    TaskAttempt,
)

JsonDict = dict[str, Any]
_HEX32 = re.compile(r"[0-9a-f]{32}")


def ts(value: dt.datetime | str | None) -> str | None:
    """An RFC 3339 UTC timestamp with milliseconds and ``Z``; naive datetimes are taken as UTC.

    A string is a timestamp as SQLite stores it (``2025-11-12 03:04:05.678901``, UTC, see
    ``UtcDateTimeField``): that exact shape is reformatted by slicing, anything else is parsed.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == "." and value[4] == value[7] == "-":
            return f"{value[:10]}T{value[11:23]}Z"
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is not dt.UTC:
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def uid(value: uuid.UUID | str | None) -> str | None:
    """A UUID as its canonical lowercase hyphenated string (None stays None).

    A string is parsed (and so checked), except the 32 lowercase hex digits SQLite stores, which are
    only hyphenated.
    """
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 32 and _HEX32.fullmatch(value):
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def project_json(p: Project) -> JsonDict:
    return {
        "id": uid(p.id),
        "name": p.name,
        "git_repo_path": p.git_repo_path,
        "setup_script": p.setup_script,
        "dev_script": p.dev_script,
        "cleanup_script": p.cleanup_script,
        "copy_files": p.copy_files,
        "created_at": ts(p.created_at),
        "updated_at": ts(p.updated_at),
    }


def task_json(t: Task) -> JsonDict:
    return {
        "id": uid(t.id),
        "project_id": uid(t.project_id),
        "title": t.title,
        "description": t.description,
        "status": t.status,
        "parent_task_attempt": uid(t.parent_task_attempt_id),
        "created_at": ts(t.created_at),
        "updated_at": ts(t.updated_at),
    }


def task_row_json(row: Mapping[str, Any]) -> JsonDict:
    """Task from a raw ``tasks`` row (keys are column names, values as stored); skips model objects."""
    return {
        "id": uid(row["id"]),
        "project_id": uid(row["project_id"]),
        "title": row["title"],
        "description": row["description"],
        "status": row["status"],
        "parent_task_attempt": uid(row["parent_task_attempt"]),
        "created_at": ts(row["created_at"]),
        "updated_at": ts(row["updated_at"]),
    }


def task_with_status_json(
    t: Task | Mapping[str, Any],
    *,
    has_in_progress_attempt: bool,
    last_attempt_failed: bool,
    executor: str | None,
) -> JsonDict:
    """TaskWithAttemptStatus: the Task fields flattened plus the attempt flags (spec §1.4).

    The flags come from ``queries.task_with_status``/``tasks_with_status``, which compute them in SQL.
    ``executor`` is ``""`` when the task has no attempt (the spec declares it a non-null string).
    """
    return {
        **(task_json(t) if isinstance(t, Task) else task_row_json(t)),
        "has_in_progress_attempt": bool(has_in_progress_attempt),
        "has_merged_attempt": False,
        "last_attempt_failed": bool(last_attempt_failed),
        "executor": executor or "",
    }


def attempt_json(a: TaskAttempt) -> JsonDict:
    return {
        "id": uid(a.id),
        "task_id": uid(a.task_id),
        "container_ref": a.container_ref,
        "branch": a.branch,
        "target_branch": a.target_branch,
        "executor": a.executor or "",
        "worktree_deleted": bool(a.worktree_deleted),
        "setup_completed_at": ts(a.setup_completed_at),
        "created_at": ts(a.created_at),
        "updated_at": ts(a.updated_at),
    }


def process_json(p: ExecutionProcess) -> JsonDict:
    """ExecutionProcess; ``executor_action`` is the stored JSON parsed back (unparsable text passes as-is)."""
    return {
        "id": uid(p.id),
        "task_attempt_id": uid(p.task_attempt_id),
        "run_reason": p.run_reason,
        "executor_action": p.executor_action,
        "before_head_commit": p.before_head_commit,
        "after_head_commit": p.after_head_commit,
        "status": p.status,
        "exit_code": p.exit_code,
        "dropped": bool(p.dropped),
        "started_at": ts(p.started_at),
        "completed_at": ts(p.completed_at),
        "created_at": ts(p.created_at),
        "updated_at": ts(p.updated_at),
    }


def merge_json(m: Merge) -> JsonDict:
    """Merge, internally tagged by ``type``: the direct or the pr shape of spec §1.5."""
    if m.merge_type == "direct":
        return {
            "type": "direct",
            "id": uid(m.id),
            "task_attempt_id": uid(m.task_attempt_id),
            "merge_commit": m.merge_commit,
            "target_branch_name": m.target_branch_name,
            "created_at": ts(m.created_at),
        }
    return {
        "type": "pr",
        "id": uid(m.id),
        "task_attempt_id": uid(m.task_attempt_id),
        "created_at": ts(m.created_at),
        "target_branch_name": m.target_branch_name,
        "pr_info": {
            "number": m.pr_number,
            "url": m.pr_url,
            "status": m.pr_status or "unknown",
            "merged_at": ts(m.pr_merged_at),
            "merge_commit_sha": m.pr_merge_commit_sha,
        },
    }


def tag_json(t: Tag) -> JsonDict:
    return {
        "id": uid(t.id),
        "tag_name": t.tag_name,
        "content": t.content,
        "created_at": ts(t.created_at),
        "updated_at": ts(t.updated_at),
    }


def _image_ids(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return None
    return [uid(v) for v in value if v is not None]  # type: ignore[misc]


def draft_json(d: Draft) -> JsonDict:
    """DraftResponse (the REST shape: every key present, nulls included)."""
    return {
        "task_attempt_id": uid(d.task_attempt_id),
        "draft_type": d.draft_type,
        "retry_process_id": uid(d.retry_process_id),
        "prompt": d.prompt,
        "queued": bool(d.queued),
        "variant": d.variant,
        "image_ids": _image_ids(d.image_ids),
        "version": int(d.version),
    }


def empty_draft_json(task_attempt_id: uuid.UUID | str, draft_type: str) -> JsonDict:
    """The DraftResponse served when no draft row exists (prompt "", version 0)."""
    return {
        "task_attempt_id": uid(task_attempt_id),
        "draft_type": draft_type,
        "retry_process_id": None,
        "prompt": "",
        "queued": False,
        "variant": None,
        "image_ids": None,
        "version": 0,
    }


def draft_row_json(d: Draft) -> JsonDict:
    """Draft (the full row the drafts stream sends): null ``retry_process_id``/``image_ids`` are omitted."""
    out: JsonDict = {
        "id": uid(d.id),
        "task_attempt_id": uid(d.task_attempt_id),
        "draft_type": d.draft_type,
        "prompt": d.prompt,
        "queued": bool(d.queued),
        "sending": bool(d.sending),
        "variant": d.variant,
        "created_at": ts(d.created_at),
        "updated_at": ts(d.updated_at),
        "version": int(d.version),
    }
    if d.retry_process_id is not None:
        out["retry_process_id"] = uid(d.retry_process_id)
    image_ids = _image_ids(d.image_ids)
    if image_ids is not None:
        out["image_ids"] = image_ids
    return out


def image_json(i: Image) -> JsonDict:
    """ImageResponse: ``file_path`` is the path prompts embed, ``.vibe-images/<stored name>``."""
    stored = i.file_path.rsplit("/", 1)[-1]
    return {
        "id": uid(i.id),
        "file_path": f".vibe-images/{stored}",
        "original_name": i.original_name,
        "mime_type": i.mime_type,
        "size_bytes": int(i.size_bytes),
        "hash": i.hash.split(":", 1)[0],  # the content hash (rows are per account)
        "created_at": ts(i.created_at),
        "updated_at": ts(i.updated_at),
    }
