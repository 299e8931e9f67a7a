"""What an attempt's branch and worktree folder are called (spec §6).

The branch is ``<prefix>/<short>-<slug>`` and the folder ``<base>/<short>-<slug>``: ``short`` is the first 4
hex characters of the attempt id, ``slug`` the task title reduced to ``[a-z0-9-]``. Names made here are
validated as branch names before anything is created with them.
"""

from __future__ import annotations

import re
import uuid

from .errors import InvalidPath
from .repo import validate_branch_name

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(title: str) -> str:
    """Spec §6: lower-case, runs outside ``[a-z0-9]`` → ``-``, trim ``-``, at most 16 chars, trim again."""
    slug = _NON_ALNUM.sub("-", title.lower()).strip("-")
    return slug[:16].rstrip("-")


def short_id(attempt_id: str | uuid.UUID) -> str:
    """The first 4 hex characters of the attempt UUID."""
    try:
        return uuid.UUID(str(attempt_id)).hex[:4]
    except ValueError as exc:
        raise InvalidPath(f"'{attempt_id}' is not an attempt id (a UUID)") from exc


def folder_name(attempt_id: str | uuid.UUID, task_title: str) -> str:
    return f"{short_id(attempt_id)}-{slugify(task_title)}"


def branch_name(prefix: str | None, attempt_id: str | uuid.UUID, task_title: str) -> str:
    """``<prefix>/<short>-<slug>``, or ``<short>-<slug>`` with an empty prefix; validated."""
    name = folder_name(attempt_id, task_title)
    prefix = (prefix or "").strip().strip("/")
    return validate_branch_name(f"{prefix}/{name}" if prefix else name)
