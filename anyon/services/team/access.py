"""Who is acting, and which projects they may see: the one place project access is decided.

The permission model (cloud mode with accounts; local mode has no principal and sees everything):

* every object belongs to a project (tasks, attempts, processes, logs, drafts, diffs through their
  attempt; images through their task), so access is decided per *project*, never per row;
* a project's owner is the user who created it (``projects.user_id``); ``anyon user share`` adds members;
* ``auth.project_visibility = "team"``: every account sees every project (a team on one server, the
  default); ``"private"``: a project is seen by its owner, its members and admins only;
* admins (``anyon user add --admin``, and the server's own API token, the legacy identity) see everything;
* prompt tags (snippets) are per account in private mode: one's own and the shared ones (no owner);
* an object a principal may not see does not exist for them: 404 with the same message as an unknown id.

The acting principal travels in a context variable set by the authentication middleware. ``asyncio``
tasks and ``asyncio.to_thread`` copy the context, so services called for a request (stamping the owner
of a new row, writing an audit line) see who asked without every signature growing a parameter.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass

from anyon.services.db.account_models import ProjectMember
from anyon.services.db.columns import parse_uuid
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess, Image, Project, Tag, Task, TaskAttempt, TaskImage

#: kinds of ids that lead to a project (a path parameter, a query parameter or a body field)
KINDS = ("project", "task", "attempt", "process", "image", "tag")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``user_id`` None is the server's API token (the legacy admin)."""

    user_id: str | None
    login: str
    admin: bool = False
    token_id: str | None = None

    @property
    def unrestricted(self) -> bool:
        return self.admin or self.user_id is None


LEGACY_ADMIN = Principal(None, "admin", admin=True)

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("anyon_principal", default=None)


def current_principal() -> Principal | None:
    return _current.get()


def set_principal(principal: Principal | None) -> None:
    _current.set(principal)


def owner_id() -> str | None:
    """The ``user_id`` to stamp on a new row: the acting account, or None (local mode, the API token)."""
    principal = _current.get()
    return principal.user_id if principal is not None else None


class AccessScope:
    """Answers "may this principal see that object?" with one or two indexed queries."""

    def __init__(self, database: Database, visibility: str = "team") -> None:
        self._db = database
        self.visibility = visibility

    def restricted(self, principal: Principal | None) -> bool:
        """True when this principal's view must be filtered (a non-admin account, private projects)."""
        return principal is not None and not principal.unrestricted and self.visibility == "private"

    def project_of(self, kind: str, ident: str | uuid.UUID) -> uuid.UUID | None:
        """The project an object belongs to; None when it does not exist."""
        oid = parse_uuid(ident)
        if oid is None:
            return None
        with self._db.connection():
            if kind == "project":
                return oid if Project.select().where(Project.id == oid).exists() else None
            if kind == "task":
                row = Task.select(Task.project).where(Task.id == oid).first()
                return row.project_id if row else None
            if kind == "attempt":
                row = (
                    Task.select(Task.project)
                    .join(TaskAttempt, on=(TaskAttempt.task == Task.id))
                    .where(TaskAttempt.id == oid)
                    .first()
                )
                return row.project_id if row else None
            if kind == "process":
                row = (
                    Task.select(Task.project)
                    .join(TaskAttempt, on=(TaskAttempt.task == Task.id))
                    .join(ExecutionProcess, on=(ExecutionProcess.task_attempt == TaskAttempt.id))
                    .where(ExecutionProcess.id == oid)
                    .first()
                )
                return row.project_id if row else None
            if kind == "image":
                row = (
                    Task.select(Task.project)
                    .join(TaskImage, on=(TaskImage.task == Task.id))
                    .where(TaskImage.image == oid)
                    .first()
                )
                return row.project_id if row else None
        raise ValueError(f"unknown object kind {kind!r}")

    def locate(self, kind: str, ident: str | uuid.UUID) -> dict[str, str]:
        """The ids an object sits under (project, task, attempt), for the audit trail; {} when unknown."""
        oid = parse_uuid(ident)
        if oid is None or kind not in ("task", "attempt", "process"):
            project = self.project_of(kind, ident) if oid is not None else None
            return {"project_id": str(project)} if project is not None else {}
        with self._db.connection():
            query = (
                Task.select(Task.project, Task.id, TaskAttempt.id.alias("attempt_id"))
                .join(TaskAttempt, on=(TaskAttempt.task == Task.id))
                .dicts()
            )
            if kind == "task":
                row = Task.select(Task.project, Task.id).where(Task.id == oid).dicts().first()
            elif kind == "attempt":
                row = query.where(TaskAttempt.id == oid).first()
            else:
                row = (
                    query.join(ExecutionProcess, on=(ExecutionProcess.task_attempt == TaskAttempt.id))
                    .where(ExecutionProcess.id == oid)
                    .first()
                )
        if row is None:
            return {}
        found = {"project_id": row["project"], "task_id": row["id"], "attempt_id": row.get("attempt_id")}
        return {k: str(v) for k, v in found.items() if v is not None}

    def can_see_project(self, principal: Principal | None, project_id: uuid.UUID) -> bool:
        if not self.restricted(principal):
            return True
        assert principal is not None
        with self._db.connection():
            user = principal.user_id
            if Project.select().where((Project.id == project_id) & (Project.user_id == user)).exists():
                return True
            member = (ProjectMember.project_id == project_id) & (ProjectMember.user_id == user)
            return bool(ProjectMember.select().where(member).exists())

    def can_see(self, principal: Principal | None, kind: str, ident: str | uuid.UUID) -> bool:
        """False for an unknown object too: both answer 404 the same way."""
        if not self.restricted(principal):
            return True
        assert principal is not None
        if kind == "tag":  # prompt snippets: the account's own, and the shared ones (no owner)
            return self._tag_visible(principal, ident)
        project_id = self.project_of(kind, ident)
        if project_id is None and kind == "image" and principal is not None:
            return self._own_image(principal, ident)  # uploaded, not yet attached to a task
        return project_id is not None and self.can_see_project(principal, project_id)

    def _own_image(self, principal: Principal, ident: str | uuid.UUID) -> bool:
        image_id = parse_uuid(ident)
        with self._db.connection():
            query = Image.select().where((Image.id == image_id) & (Image.user_id == principal.user_id))
            return image_id is not None and bool(query.exists())

    def _tag_visible(self, principal: Principal, ident: str | uuid.UUID) -> bool:
        tag_id = parse_uuid(ident)
        with self._db.connection():
            mine = Tag.user_id.is_null() | (Tag.user_id == principal.user_id)
            return tag_id is not None and bool(Tag.select().where((Tag.id == tag_id) & mine).exists())

    def visible_tag_ids(self, principal: Principal | None) -> set[str] | None:
        """The tags a principal sees (own and shared); None when it sees every tag."""
        if not self.restricted(principal):
            return None
        assert principal is not None
        with self._db.connection():
            mine = Tag.user_id.is_null() | (Tag.user_id == principal.user_id)
            return {str(t.id) for t in Tag.select(Tag.id).where(mine)}

    def visible_project_ids(self, principal: Principal | None) -> set[str] | None:
        """The ids (as strings) of the projects a principal sees; None when it sees every project."""
        if not self.restricted(principal):
            return None
        assert principal is not None
        with self._db.connection():
            owned = Project.select(Project.id).where(Project.user_id == principal.user_id)
            shared = ProjectMember.select(ProjectMember.project_id).where(
                ProjectMember.user_id == principal.user_id
            )
            return {str(p.id) for p in owned} | {str(m.project_id) for m in shared}
