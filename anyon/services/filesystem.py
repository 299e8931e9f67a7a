"""Directory listing for the new-project folder picker (spec §1.7 ``/api/filesystem/directory``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from anyon.services.errors import ServiceError


class FilesystemService:
    def __init__(self, home_dir: str | None = None) -> None:
        self._home = home_dir or str(Path.home())

    def list_directory(self, path: str | None) -> dict[str, Any]:
        """Entries of ``path`` (default: home), hidden ones skipped, directories first, then by name."""
        target = Path(os.path.expanduser(path)) if path else Path(self._home)
        if "\x00" in str(target):
            raise ServiceError("Directory does not exist")
        target = target.absolute()
        if not target.exists():
            raise ServiceError("Directory does not exist")
        if not target.is_dir():
            raise ServiceError("Path is not a directory")
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
