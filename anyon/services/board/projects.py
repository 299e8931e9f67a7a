"""Projects: the git repositories users register (spec §1.3 creation rules)."""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peewee as pw

from anyon.services.board.changes import ChangeNotifier
from anyon.services.db import queries
from anyon.services.db.database import Database
from anyon.services.db.models import Project
from anyon.services.db.readcache import ReadCache
from anyon.services.db.serialize import project_json
from anyon.services.errors import NotFound, ServiceError
from anyon.services.git import GitService
from anyon.services.git.paths import PathPolicy
from anyon.services.team.access import owner_id

_FORBIDDEN_NAME = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
DUPLICATE_PATH = "A project with this git repository path already exists"
NOT_EMPTY_NOT_GIT = (
    "The specified directory already exists, is not empty and is not a git repository: choose a new or "
    "empty folder, or run `git init` there yourself and add it as an existing repository "
    "(use_existing_repo=true)"
)


def _undo(created: str | None) -> None:
    """Remove what project creation made on disk (never anything that existed before it)."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)


def validate_project_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise ServiceError("Project name cannot be empty")
    if _FORBIDDEN_NAME.search(name):
        raise ServiceError('Project name cannot contain / \\ : * ? " < > | or control characters')
    if name in (".", ".."):
        raise ServiceError("Project name cannot be . or ..")
    return name


class ProjectService:
    def __init__(
        self,
        database: Database,
        changes: ChangeNotifier,
        git: GitService,
        *,
        workspace_dir: str,
        project_roots: tuple[str, ...] = (),
        user_workspace_dir: Callable[[], str | None] | None = None,
        cache: ReadCache | None = None,
    ) -> None:
        self._db = database
        self._cache = cache or ReadCache(None)
        self._changes = changes
        self._git = git
        self._create_lock = threading.Lock()
        self._workspace_dir = workspace_dir
        #: the roots check every project path goes through (shared with the pickers and executions)
        self.paths = PathPolicy(project_roots)
        # a callable returning the UI config's workspace_dir (None when unset); local mode honours it
        self._user_workspace_dir = user_workspace_dir

    # -- reads -----------------------------------------------------------------------------------
    def _list(self) -> list[dict[str, Any]]:
        with self._db.connection():
            rows = Project.select().order_by(Project.updated_at.desc())
            return [project_json(p) for p in rows]

    def list(self) -> list[dict[str, Any]]:
        """Every project, newest change first; from the read cache while the database is unchanged."""
        return [dict(row) for row in self._cache.fetch("projects", self._list)]

    def get_row(self, project_id: uuid.UUID) -> Project:
        with self._db.connection():
            project = Project.get_or_none(Project.id == project_id)
        if project is None:
            raise NotFound(f"Project {project_id} not found")
        return project

    def get(self, project_id: uuid.UUID) -> dict[str, Any]:
        return project_json(self.get_row(project_id))

    def exists(self, project_id: uuid.UUID) -> bool:
        with self._db.connection():
            return Project.select(Project.id).where(Project.id == project_id).exists()

    # -- path rules ------------------------------------------------------------------------------
    def _workspace(self) -> str:
        if self._user_workspace_dir is not None:
            chosen = self._user_workspace_dir()
            if chosen:
                return os.path.expanduser(chosen)
        return self._workspace_dir

    def resolve_path(self, raw: str, name: str) -> str:
        """The canonical (resolved, checked) path a project at ``raw`` gets; empty = workspace/name."""
        if raw.strip() or "\x00" in raw:
            return self.paths.project_path(raw)
        return self.paths.project_path(os.path.join(self._workspace(), name), "Workspace path")

    def repository_path(self, project_id: uuid.UUID) -> str:
        """The project's stored path, after checking it still resolves inside the roots (every use)."""
        return self.paths.check_stored(self.get_row(project_id).git_repo_path)

    def _path_taken(self, real: str, exclude_id: uuid.UUID | None = None) -> bool:
        """Whether another project already has this repository, however its path was spelled.

        Paths are stored resolved; rows written before that rule are compared by their resolved form.
        """
        if queries.project_path_in_use(real, exclude_id=exclude_id):
            return True
        rows = Project.select(Project.id, Project.git_repo_path)
        return any(
            os.path.realpath(row.git_repo_path) == real
            for row in rows
            if exclude_id is None or row.id != exclude_id
        )

    # -- writes ----------------------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = validate_project_name(body["name"])
        path = self.resolve_path(body["git_repo_path"], name)
        with self._db.connection():
            if self._path_taken(path):
                raise ServiceError(DUPLICATE_PATH)
        # one creation at a time: what the undo below removes is then surely this call's own work
        with self._create_lock:
            try:
                created = self._prepare_repository(path, bool(body["use_existing_repo"]))
            except OSError as exc:  # a path the OS refuses to look up (e.g. a name too long)
                raise ServiceError(f"Invalid git repository path {path}: {exc.strerror}") from None
            try:
                # what was found or made must still be the path that was checked (no symlink swapped in)
                if os.path.realpath(path) != path:
                    raise ServiceError(f"The path {path} changed while the project was being created")
                project = self._insert(name, path, body)
            except BaseException:
                _undo(created)  # a refused project leaves no folder or repository of ours behind
                raise
        return project_json(project)

    def create_cloned(
        self, raw_name: str, body: dict[str, Any], clone_into: Callable[[str], None]
    ) -> dict[str, Any]:
        """A project at ``<workspace>/<name>`` whose repository ``clone_into(path)`` creates there.

        ``clone_into`` must leave nothing behind when it fails; once it succeeded, a refused project
        (same path registered meanwhile, a symlink swapped in) removes the clone again.
        """
        name = validate_project_name(raw_name)
        path = self.resolve_path("", name)
        with self._db.connection():
            if self._path_taken(path):
                raise ServiceError(DUPLICATE_PATH)
        if os.path.lexists(path):
            raise ServiceError(f"The folder {path} already exists; choose another project name")
        clone_into(path)
        try:
            with self._create_lock:
                if os.path.realpath(path) != path:
                    raise ServiceError(f"The path {path} changed while the project was being created")
                self._git.ensure_initial_commit(path)
                project = self._insert(name, path, body)
        except BaseException:
            _undo(path)
            raise
        return project_json(project)

    def _insert(self, name: str, path: str, body: dict[str, Any]) -> Project:
        with self._db.connection(), self._db.atomic():
            if self._path_taken(path):
                raise ServiceError(DUPLICATE_PATH)
            try:
                return Project.create(
                    user_id=owner_id(),  # the acting account (cloud mode), else None
                    name=name,
                    git_repo_path=path,
                    setup_script=body.get("setup_script"),
                    dev_script=body.get("dev_script"),
                    cleanup_script=body.get("cleanup_script"),
                    copy_files=body.get("copy_files"),
                )
            except pw.IntegrityError:
                raise ServiceError(DUPLICATE_PATH) from None

    def _prepare_repository(self, path: str, use_existing: bool) -> str | None:
        """Check the existing repository at ``path``, or create the folder and its repository there.

        Returns what this call created — the topmost new directory, or the new ``.git`` inside an existing
        folder — so that a later failure can remove exactly that and nothing the user had.
        """
        target = Path(path)
        if use_existing:
            if not target.exists():
                raise ServiceError("The specified path does not exist")
            if not target.is_dir():
                raise ServiceError("The specified path is not a directory")
            if not (target / ".git").exists():
                raise ServiceError("The specified directory is not a git repository")
            self._git.ensure_initial_commit(path)
            return None
        if target.exists() and not target.is_dir():
            raise ServiceError("The specified path is not a directory")
        if target.is_dir() and not (target / ".git").exists() and any(target.iterdir()):
            # asked for a new repository: never turn a folder of the user's files into one
            raise ServiceError(NOT_EMPTY_NOT_GIT)
        created: str | None = None
        if not target.exists():
            created = str(target)
            while not Path(created).parent.exists():
                created = str(Path(created).parent)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceError(f"Failed to create directory {path}: {exc.strerror}") from None
        if not (target / ".git").exists():
            created = created or str(target / ".git")
            try:
                self._git.init_repo(path)
                self._git.ensure_initial_commit(path)
            except BaseException:
                _undo(created)
                raise
        return created

    def update(self, project_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /api/projects/{id}``: change only the fields ``body`` carries.

        An absent field keeps its value; ``name``/``git_repo_path`` sent as null keep theirs too (they
        cannot be empty); a script or ``copy_files`` sent as null is cleared. The web UI sends every
        field, so for it this is the same as replacing the row.
        """
        project = self.get_row(project_id)
        name = validate_project_name(body["name"]) if body.get("name") is not None else project.name
        path = project.git_repo_path
        if body.get("git_repo_path") is not None:
            path = self.resolve_path(body["git_repo_path"], name)
            if path != project.git_repo_path and not self._git.is_repository(path):
                raise ServiceError(f"{path} is not a git repository")
        with self._db.connection(), self._db.atomic():
            if path != project.git_repo_path and self._path_taken(path, exclude_id=project.id):
                raise ServiceError(DUPLICATE_PATH)
            project.name = name
            project.git_repo_path = path
            for key in ("setup_script", "dev_script", "cleanup_script", "copy_files"):
                if key in body:  # absent: unchanged; null: cleared (see ``update``)
                    setattr(project, key, body[key])
            try:
                project.save()
            except pw.IntegrityError:
                raise ServiceError(DUPLICATE_PATH) from None
        return project_json(project)

    def delete(self, project_id: uuid.UUID) -> None:
        project = self.get_row(project_id)
        with self._db.connection(), self._db.atomic():
            project.delete_instance()
        self._changes.project_deleted(project_id)
