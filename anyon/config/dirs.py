"""Directory preparation: what the server creates before it starts, and what ``validate`` checks.

``check_directories`` never touches the disk (``anyon config validate`` runs in ExecStartPre and must
not create anything); ``prepare_directories`` creates what is missing with tight permissions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from anyon.config.errors import ConfigIssue, make_issue
from anyon.config.model import AnyonConfig

DIR_MODE = 0o750
SECRET_DIR_MODE = 0o700


class DirectoryError(OSError):
    """A directory the config names cannot be created or used; the message names key and path."""


@dataclass(frozen=True)
class Needed:
    key: str
    path: str
    mode: int
    is_file: bool = False  # the path is a file: only its parent directory is prepared


def needed_paths(config: AnyonConfig) -> list[Needed]:
    """Every directory (or file whose parent is needed) the server writes to, in creation order."""
    paths = config.paths
    items = [
        Needed("paths.base_dir", paths.base_dir, DIR_MODE),
        Needed("paths.data_dir", paths.data_dir, DIR_MODE),
        Needed("paths.temp_dir", paths.temp_dir, DIR_MODE),
        Needed("paths.worktree_dir", paths.worktree_dir, DIR_MODE),
        Needed("paths.workspace_dir", paths.workspace_dir, DIR_MODE),
    ]
    if config.database.url is None:
        items.append(Needed("database.file", config.database.file, DIR_MODE, is_file=True))
    if paths.log_file:
        items.append(Needed("paths.log_file", paths.log_file, DIR_MODE, is_file=True))
    if paths.secrets_dir:
        items.append(Needed("paths.secrets_dir", paths.secrets_dir, SECRET_DIR_MODE))
    return items


def _existing_ancestor(path: str) -> str:
    current = path
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def check_directories(config: AnyonConfig) -> list[ConfigIssue]:
    """Problems that would stop the server from using its directories; creates nothing."""
    issues: list[ConfigIssue] = []

    def problem(key: str, path: str, detail: str) -> None:
        issues.append(make_issue(key, path, "a usable path", path, kind="environment", detail=detail))

    for item in needed_paths(config):
        if item.is_file and os.path.lexists(item.path):
            if os.path.isdir(item.path):
                problem(item.key, item.path, f"{item.path} is a directory, not a file")
            elif not os.access(item.path, os.R_OK | os.W_OK):
                problem(item.key, item.path, f"{item.path} is not writable")
            continue
        directory = os.path.dirname(item.path) if item.is_file else item.path
        if os.path.isdir(directory):
            if not os.access(directory, os.W_OK | os.X_OK):
                problem(item.key, directory, f"the directory {directory} is not writable")
            continue
        if os.path.lexists(directory):
            problem(item.key, directory, f"{directory} exists but is not a directory")
            continue
        ancestor = _existing_ancestor(directory)
        if not os.path.isdir(ancestor):
            problem(item.key, directory, f"cannot create {directory}: {ancestor} is not a directory")
        elif not os.access(ancestor, os.W_OK | os.X_OK):
            problem(item.key, directory, f"cannot create {directory}: {ancestor} is not writable")
    token_file = config.auth.token_file
    if token_file and not (os.path.isfile(token_file) and os.access(token_file, os.R_OK)):
        problem(
            "auth.token_file", token_file, f"the token file {token_file} does not exist or is not readable"
        )
    return issues


def make_directory(key: str, path: str, mode: int = DIR_MODE) -> None:
    """Create ``path`` and missing parents; only directories created here get ``mode``."""
    missing: list[str] = []
    current = path
    while not os.path.isdir(current):
        if os.path.lexists(current):
            raise DirectoryError(f"{key}: cannot create {path}: {current} exists and is not a directory")
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
            os.chmod(directory, mode)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            if not os.path.isdir(directory):
                raise DirectoryError(f"{key}: cannot create {path}: {directory} is not a directory") from None
        except OSError as exc:
            raise DirectoryError(f"{key}: cannot create {directory}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise DirectoryError(f"{key}: the directory {path} is not writable")


def prepare_directories(config: AnyonConfig) -> None:
    """Create the data, worktree, workspace, temp and log directories (0750) and the secrets one (0700).

    Existing directories keep their permissions, except the secrets directory, which is tightened to
    0700 because other users must never read attempt credentials. Raises :class:`DirectoryError`
    naming the setting and the path.
    """
    for item in needed_paths(config):
        directory = os.path.dirname(item.path) if item.is_file else item.path
        make_directory(item.key, directory, item.mode)
        if item.mode == SECRET_DIR_MODE:
            try:
                if os.stat(directory).st_mode & 0o077:
                    os.chmod(directory, SECRET_DIR_MODE)
            except OSError as exc:
                raise DirectoryError(
                    f"{item.key}: cannot restrict {directory} to 0700: {exc.strerror or exc}"
                ) from exc
