"""What every table shares: the column types, the base model, the id/time helpers and the vocabularies of the
CHECK-constrained columns.

Storage choices (spec §8 leaves them to us):

* ids are UUIDs: native ``uuid`` on PostgreSQL, 32-char hex text on SQLite;
* timestamps are timezone-aware UTC datetimes: ``timestamptz`` on PostgreSQL, fixed-width
  ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text on SQLite (so text order is time order);
* ``executor_action`` and ``drafts.image_ids`` are JSON text.

Apart from the tables (``models``, ``account_models``) because both derive from :class:`BaseModel`, the
frozen migrations (``migrations``) share the vocabularies but must not depend on the current models, and
most services only need ``utc_now`` or ``parse_uuid``, not a table.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import peewee as pw

UTC = dt.UTC

TASK_STATUSES: tuple[str, ...] = ("todo", "inprogress", "inreview", "done", "cancelled")
PROCESS_STATUSES: tuple[str, ...] = ("running", "completed", "failed", "killed")
RUN_REASONS: tuple[str, ...] = ("setupscript", "cleanupscript", "codingagent", "devserver")
# Run reasons that make a task "in progress" / "failed" (dev servers never do; spec §1.4).
ATTEMPT_RUN_REASONS: tuple[str, ...] = ("setupscript", "cleanupscript", "codingagent")
MERGE_TYPES: tuple[str, ...] = ("direct", "pr")
PR_STATUSES: tuple[str, ...] = ("open", "merged", "closed")
DRAFT_TYPES: tuple[str, ...] = ("follow_up", "retry")
LOG_KINDS: tuple[str, ...] = ("stdout", "stderr", "normalized", "session_id", "finished")

_SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def utc_now() -> dt.datetime:
    """The current time as an aware UTC datetime (the default of every timestamp column)."""
    return dt.datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def parse_uuid(value: object) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one; lets callers answer 4xx instead of a driver error."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def in_sql(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def in_check(column: str, values: tuple[str, ...]) -> pw.Node:
    return pw.Check(in_sql(column, values))


def _is_postgres(field: pw.Field) -> bool:
    model = getattr(field, "model", None)
    database = model._meta.database if model is not None else None
    return isinstance(database, pw.PostgresqlDatabase)


class UtcDateTimeField(pw.Field):
    """An aware UTC datetime: ``timestamptz`` on PostgreSQL, sortable fixed-width text on SQLite.

    Naive datetimes are taken to be UTC already; values always come back aware (UTC).
    """

    field_type = "TIMESTAMPTZ"

    def db_value(self, value: Any) -> Any:
        if value is None or isinstance(value, pw.Node):
            return value
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if not isinstance(value, dt.datetime):
            raise TypeError(f"{self.name}: expected a datetime, got {type(value).__name__}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if _is_postgres(self):
            return value
        return value.strftime(_SQLITE_TS_FORMAT)

    def python_value(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        raise TypeError(f"{self.name}: unexpected stored value {value!r}")


class JsonTextField(pw.TextField):
    """JSON kept as text (portable across SQLite and PostgreSQL, byte-for-byte what was written).

    Stored text that is not valid JSON is handed back unchanged, as the spec asks for executor_action.
    """

    def db_value(self, value: Any) -> Any:
        if value is None or isinstance(value, pw.Node):
            return value
        if isinstance(value, str):
            return value
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def python_value(self, value: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value


class BaseModel(pw.Model):
    """Common base: UUID primary key, no database until a Database binds the models."""

    id = pw.UUIDField(primary_key=True, default=new_id)

    class Meta:
        database = None
        legacy_table_names = False

    def save(self, force_insert: bool = False, only: Any = None) -> int | bool:
        """Saving an existing row bumps ``updated_at`` (the reference did this by hand, inconsistently)."""
        if not force_insert and "updated_at" in self._meta.fields:
            self.updated_at = utc_now()
            if only is not None:
                only = [*only, self._meta.fields["updated_at"]]
        return super().save(force_insert=force_insert, only=only)
