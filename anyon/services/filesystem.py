"""The new-project pickers: directory listing and git repository discovery (spec §1.7)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from anyon.services.errors import ServiceError


def _existing_directory(raw: str) -> Path:
    """``raw`` (``~`` expanded, made absolute) when it names a directory, else a soft error saying why.

    A path the OS refuses to look up (a name too long, a NUL byte) is answered the same way, not with a 500.
    """
    if "\x00" in raw:
        raise ServiceError("Directory does not exist")
    target = Path(os.path.expanduser(raw)).absolute()
    try:
        if not target.exists():
            raise ServiceError("Directory does not exist")
        if not target.is_dir():
            raise ServiceError("Path is not a directory")
    except OSError as exc:
        raise ServiceError(f"Invalid path: {exc.strerror}") from None
    return target


class FilesystemService:
    def __init__(self, home_dir: str | None = None) -> None:
        self._home = home_dir or str(Path.home())

    def list_directory(self, path: str | None) -> dict[str, Any]:
        """Entries of ``path`` (default: home), hidden ones skipped, directories first, then by name."""
        target = _existing_directory(path or self._home)
        entries: list[dict[str, Any]] = []
        try:
            with os.scandir(target) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        continue
                    entries.append(
                        {
                            "name": entry.name,
                            "path": entry.path,
                            "is_directory": is_dir,
                            "is_git_repo": is_dir and os.path.exists(os.path.join(entry.path, ".git")),
                            "last_modified": None,
                        }
                    )
        except PermissionError:
            raise ServiceError(f"Permission denied: {target}") from None
        entries.sort(key=lambda e: (not e["is_directory"], e["name"].lower()))
        return {"entries": entries, "current_path": str(target)}

    def find_git_repos(self, path: str | None, *, time_budget: float = 1.2) -> list[dict[str, Any]]:
        """Git repositories under ``path`` (depth 3) or under home (depth 4), most recently touched first.

        The walk stops at ``time_budget`` seconds and returns what it found: a slow disk must not hang
        the dialog. ``last_modified`` is the age in seconds, as the UI expects.
        """
        if path:
            roots, depth = [_existing_directory(path)], 3
        else:
            roots, depth = [Path(self._home)], 4
        deadline = time.monotonic() + time_budget
        now = time.time()
        found: dict[str, dict[str, Any]] = {}
        queue: list[tuple[Path, int]] = [(r, 0) for r in roots]
        while queue and time.monotonic() < deadline:
            current, level = queue.pop(0)
            try:
                with os.scandir(current) as it:
                    children = [
                        e for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                    ]
            except OSError:
                continue
            for entry in children:
                if entry.name in ("node_modules", "target", "dist", "build"):
                    continue
                if os.path.exists(os.path.join(entry.path, ".git")):
                    try:
                        age = max(0, int(now - entry.stat(follow_symlinks=False).st_mtime))
                    except OSError:
                        age = None
                    found[entry.path] = {
                        "name": entry.name,
                        "path": entry.path,
                        "is_directory": True,
                        "is_git_repo": True,
                        "last_modified": age,
                    }
                elif level + 1 < depth:
                    queue.append((Path(entry.path), level + 1))
        return sorted(found.values(), key=lambda e: (e["last_modified"] is None, e["last_modified"] or 0))
