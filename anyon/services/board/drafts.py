"""Drafts: the follow-up composer's autosave and queue (spec §1.5 draft routes, types.md §12).

Optimistic concurrency: a write carrying ``version`` must match the stored version (409 otherwise),
and every write bumps it. A queued follow-up is sent as soon as its attempt has nothing running.

Drafts belong to the account that writes them (cloud mode with accounts): each account has its own
follow-up and retry drafts on an attempt, its own drafts stream, and a colleague on the same attempt
never sees them. Without accounts (local mode, the server's API token) the owner is None, as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from anyon.services.board import events
from anyon.services.db.columns import utc_now
from anyon.services.db.database import Database
from anyon.services.db.models import Draft, ExecutionProcess, Task, TaskAttempt
from anyon.services.db.serialize import draft_json, draft_row_json, empty_draft_json
from anyon.services.errors import Conflict, NotFound, ServiceError
from anyon.services.logs import jsonpatch
from anyon.services.team.access import owner_id

DRAFT_TYPES = ("follow_up", "retry")
SendFollowUp = Callable[[uuid.UUID, dict[str, Any]], Awaitable[Any]]


def drafts_topic(project_id: str, user_id: str | None) -> str:
    """The bus topic of one account's drafts of a project (the plain project topic without accounts)."""
    topic = events.drafts_topic(project_id)
    return topic if user_id is None else f"{topic}@{user_id}"


def _mine(user_id: str | None) -> Any:
    return Draft.user_id.is_null() if user_id is None else Draft.user_id == user_id


def check_type(value: str | None) -> str:
    draft_type = value or "follow_up"
    if draft_type not in DRAFT_TYPES:
        raise ServiceError(f"Invalid draft type {draft_type!r}: expected follow_up or retry")
    return draft_type


def stream_entry(
    attempt_id: str, follow_up: dict[str, Any] | None = None, retry: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One attempt's record in the drafts stream; a missing follow-up draft is served empty."""
    return {"follow_up": follow_up or empty_draft_json(attempt_id, "follow_up"), "retry": retry}


class DraftService:
    def __init__(self, database: Database, bus: events.EventBus) -> None:
        self._db = database
        self._bus = bus

    def _attempt(self, attempt_id: uuid.UUID) -> TaskAttempt:
        attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
        if attempt is None:
            raise NotFound(f"Task attempt {attempt_id} not found")
        return attempt

    def _row(self, attempt_id: uuid.UUID, draft_type: str) -> Draft | None:
        """The acting account's draft of that type."""
        return Draft.get_or_none(
            (Draft.task_attempt == attempt_id) & (Draft.draft_type == draft_type) & _mine(owner_id())
        )

    def topic(self, project_id: uuid.UUID) -> str:
        """The drafts stream topic of the acting account."""
        return drafts_topic(str(project_id), owner_id())

    def _publish(
        self, attempt: TaskAttempt, draft_type: str, row: Draft | None, user_id: str | None = None
    ) -> None:
        project_id = Task.get_by_id(attempt.task_id).project_id
        value = draft_row_json(row) if row is not None else None
        owner = row.user_id if row is not None else user_id
        self._bus.publish(
            drafts_topic(str(project_id), owner), jsonpatch.draft_ops(str(attempt.id), draft_type, value)
        )

    def get(self, attempt_id: uuid.UUID, draft_type: str) -> dict[str, Any]:
        with self._db.connection():
            self._attempt(attempt_id)
            row = self._row(attempt_id, draft_type)
        return draft_json(row) if row is not None else empty_draft_json(attempt_id, draft_type)

    def project_snapshot(self, project_id: uuid.UUID) -> dict[str, Any]:
        """``{attempt_id: {"follow_up": Draft, "retry": Draft|null}}`` of every attempt of the project.

        The drafts stream's document: an attempt without a follow-up row gets the empty follow-up draft,
        so the composer always has something to bind to.
        """
        with self._db.connection():
            attempts = [
                str(a.id)
                for a in TaskAttempt.select(TaskAttempt.id)
                .join(Task, on=(TaskAttempt.task == Task.id))
                .where(Task.project == project_id)
            ]
            found: dict[str, dict[str, dict[str, Any]]] = {}
            if attempts:
                for d in Draft.select().where(Draft.task_attempt.in_(attempts) & _mine(owner_id())):
                    found.setdefault(str(d.task_attempt_id), {})[d.draft_type] = draft_row_json(d)
        return {
            a: stream_entry(a, found.get(a, {}).get("follow_up"), found.get(a, {}).get("retry"))
            for a in attempts
        }

    def save(self, attempt_id: uuid.UUID, draft_type: str, body: dict[str, Any]) -> dict[str, Any]:
        if draft_type == "retry" and not body.get("retry_process_id"):
            raise ServiceError("retry_process_id is required for a retry draft")
        with self._db.connection(), self._db.atomic():
            attempt = self._attempt(attempt_id)
            if body.get("retry_process_id"):
                retry_id = uuid.UUID(body["retry_process_id"])
                owned = ExecutionProcess.select().where(
                    (ExecutionProcess.id == retry_id) & (ExecutionProcess.task_attempt == attempt_id)
                )
                if not owned.exists():
                    raise ServiceError(f"Process {retry_id} does not belong to this attempt")
            row = self._row(attempt_id, draft_type)
            expected = body.get("version")
            if row is not None and row.queued:
                raise Conflict("The draft is queued; unqueue it before editing")
            if expected is not None and expected != (row.version if row is not None else 0):
                raise Conflict("ConflictError: the draft was changed elsewhere (version mismatch)")
            if row is None:
                row = Draft.create(
                    task_attempt=attempt_id, draft_type=draft_type, prompt="", version=0, user_id=owner_id()
                )
            if body.get("prompt") is not None:
                row.prompt = body["prompt"]
            if body.get("variant") is not None:
                row.variant = body["variant"]
            if body.get("image_ids") is not None:
                row.image_ids = body["image_ids"]
            if body.get("retry_process_id"):
                row.retry_process_id = uuid.UUID(body["retry_process_id"])
            row.version = int(row.version) + 1
            row.save()
            self._publish(attempt, draft_type, row)
        return draft_json(row)

    def delete(self, attempt_id: uuid.UUID, draft_type: str) -> None:
        if draft_type != "retry":
            raise ServiceError("Only retry drafts can be deleted")
        self.clear(attempt_id, draft_type)

    def clear(self, attempt_id: uuid.UUID, draft_type: str) -> None:
        """Forget a draft (after its follow-up or retry was sent): the acting account's, and the queued
        follow-up being sent whoever wrote it (the queue may send it on another account's behalf)."""
        with self._db.connection(), self._db.atomic():
            attempt = self._attempt(attempt_id)
            which = (Draft.task_attempt == attempt_id) & (Draft.draft_type == draft_type)
            rows = list(
                Draft.select(Draft.id, Draft.user_id).where(which & (_mine(owner_id()) | Draft.sending))
            )
            for row in rows:
                Draft.delete().where(Draft.id == row.id).execute()
                self._publish(attempt, draft_type, None, row.user_id)

    def set_queued(self, attempt_id: uuid.UUID, draft_type: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._db.connection(), self._db.atomic():
            attempt = self._attempt(attempt_id)
            row = self._row(attempt_id, draft_type)
            if row is None:
                raise ServiceError("There is no draft to queue")
            if body.get("expected_queued") is not None and bool(row.queued) != body["expected_queued"]:
                raise Conflict("ConflictError: the draft's queued state changed elsewhere")
            if body.get("expected_version") is not None and int(row.version) != body["expected_version"]:
                raise Conflict("ConflictError: the draft was changed elsewhere (version mismatch)")
            if body["queued"] and not row.prompt.strip():
                raise ServiceError("Cannot queue an empty draft")
            row.queued = bool(body["queued"])
            row.version = int(row.version) + 1
            row.save()
            self._publish(attempt, draft_type, row)
        return draft_json(row)

    def take_queued(self, attempt_id: uuid.UUID) -> dict[str, Any] | None:
        """The queued follow-up of an attempt, marked ``sending``; None when nothing is queued."""
        with self._db.connection(), self._db.atomic():
            row = (  # the oldest queued follow-up of any account: one is sent at a time
                Draft.select()
                .where((Draft.task_attempt == attempt_id) & (Draft.draft_type == "follow_up") & Draft.queued)
                .order_by(Draft.updated_at)
                .first()
            )
            if row is None or row.sending:
                return None
            row.sending = True
            row.save()
            return {"prompt": row.prompt, "variant": row.variant, "image_ids": row.image_ids}

    def release_sending(self, attempt_id: uuid.UUID) -> None:
        with self._db.connection():
            Draft.update(sending=False, updated_at=utc_now()).where(
                (Draft.task_attempt == attempt_id) & (Draft.draft_type == "follow_up")
            ).execute()
