"""The tables of a team server's accounts (migration 5): users, their API tokens and project members.

Cloud mode only (``services/team``); a local server has the tables but never writes them. Apart from the
spec §3 tables (``models``) because they reference none of them: a member's ``project_id`` is a plain
UUID column, not a foreign key, and the ``user_id`` columns of the spec tables are plain text.
"""

from __future__ import annotations

import peewee as pw

from anyon.services.db.columns import BaseModel, UtcDateTimeField, utc_now


class User(BaseModel):
    """An account of a cloud server shared by a team (migration 5); local mode has none.

    ``id`` is text (a UUID string) because the ``user_id`` columns of the spec tables are text.
    """

    id = pw.TextField(primary_key=True)  # type: ignore[assignment]
    login = pw.TextField(unique=True)
    is_admin = pw.BooleanField(default=False)
    disabled_at = UtcDateTimeField(null=True)
    created_at = UtcDateTimeField(default=utc_now)
    updated_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "users"


class UserToken(BaseModel):
    """An API token of a user: only its keyed hash is stored (``anyon.services.team.accounts``)."""

    user_id = pw.TextField(index=True)
    name = pw.TextField()
    secret_hash = pw.TextField(unique=True)
    revoked_at = UtcDateTimeField(null=True)
    created_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "user_tokens"


class ProjectMember(BaseModel):
    """A user given access to a project besides its owner (``projects.user_id``)."""

    project_id = pw.UUIDField()
    user_id = pw.TextField(index=True)
    created_at = UtcDateTimeField(default=utc_now)

    class Meta:
        table_name = "project_members"
        indexes = ((("project_id", "user_id"), True),)
