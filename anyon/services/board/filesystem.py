"""The new-project pickers: directory listing and git repository discovery (spec §1.7).

Both take a path from the client through the same :class:`~anyon.services.git.paths.PathPolicy` as project
creation: relative paths are refused, the path is resolved, and with ``paths.project_roots`` set only what
is inside a root is listed. An ancestor of a root (``/``, the home directory) lists only the entries
that lead to a root, and is where the pickers start when the home directory is outside every root; any
other directory outside the roots is refused. Entries are reported by their resolved path, and a symlink
leading out of the roots is not listed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from anyon.services.errors import ServiceError
from anyon.services.git.paths import PathPolicy, is_within


def _existing_directory(target: Path) -> Path:
    """``target`` when it names a directory, else a soft error saying why.

    A path the OS refuses to look up (a name too long) is answered the same way, not with a 500.
    """
    try:
        if not target.exists():
            raise ServiceError("Directory does not exist")
        if not target.is_dir():
            raise ServiceError("Path is not a directory")
    except OSError as exc:
        raise ServiceError(f"Invalid path: {exc.strerror}") from None
    return target


class FilesystemService:
    def __init__(self, home_dir: str | None = None, paths: PathPolicy | None = None) -> None:
        self._home = home_dir or str(Path.home())
        self._paths = paths or PathPolicy()

    def _start(self) -> str:
        """Where a picker opens without a path: home, unless the roots exclude it (then the first root)."""
        home = os.path.realpath(self._home)
        if self._paths.inside_roots(home) or self._paths.leads_to_root(home):
            return home
        return self._paths.roots[0]

    def _target(self, path: str | None) -> tuple[Path, bool]:
        """The resolved directory to read, and whether it is only an ancestor of the roots."""
        real = self._paths.resolve(path, "Directory path") if path else self._start()
        ancestor = not self._paths.inside_roots(real)
        if ancestor and not self._paths.leads_to_root(real):
            roots = ", ".join(self._paths.roots)
            raise ServiceError(f"Directory {path or real} is outside the permitted project roots: {roots}")
        return _existing_directory(Path(real)), ancestor

    def _listable(self, entry: os.DirEntry[str], ancestor: bool) -> bool:
        """With roots, an entry is shown when it resolves inside one (or, from an ancestor, leads to one)."""
        if not self._paths.restricted:
            return True
        real = os.path.realpath(entry.path)
        if ancestor:
            return self._paths.leads_to_root(real) or real in self._paths.roots
        return self._paths.inside_roots(real)

    def list_directory(self, path: str | None) -> dict[str, Any]:
        """Entries of ``path`` (default: home), hidden ones skipped, directories first, then by name."""
        target, ancestor = self._target(path)
        entries: list[dict[str, Any]] = []
        try:
            with os.scandir(target) as it:
                for entry in it:
                    if entry.name.startswith(".") or not self._listable(entry, ancestor):
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
        target, ancestor = self._target(path or None)
        depth = 3 if path else 4
        # from an ancestor of the roots, the walk covers only the roots below it
        roots = [Path(r) for r in self._paths.roots if is_within(r, str(target))] if ancestor else [target]
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
