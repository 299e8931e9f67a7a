"""Where project repositories may live: paths are resolved before they are checked, and checked on use.

A path from a client is refused when relative (it would depend on the server's working directory), then
``~``-expanded and resolved with ``realpath`` — symlinks, ``..``, ``.``, doubled and trailing slashes
all gone — and only the resolved path is compared with ``paths.project_roots`` and stored. A symlink inside
a root that points outside it is therefore outside, and one repository reached through two spellings is
one path. A stored path is resolved again whenever it is used, since a directory can be replaced by a
symlink after it was registered.

The pickers follow the same rule. With roots configured, a directory outside every root is refused,
except an ancestor of a root (``/``, ``~``): there only the entries leading to a root are listed, so the
dialog can still be walked down to the roots and shows nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from anyon.services.errors import ServiceError

SYSTEM_ROOTS = ("/proc", "/sys", "/dev")


def is_within(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is ``root`` or below it (both resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class PathPolicy:
    """The configured roots (resolved once) and the checks every path from outside goes through."""

    def __init__(self, project_roots: Iterable[str] = ()) -> None:
        resolved = (os.path.realpath(os.path.expanduser(r)) for r in project_roots if r)
        self.roots: tuple[str, ...] = tuple(dict.fromkeys(resolved))

    @property
    def restricted(self) -> bool:
        return bool(self.roots)

    def resolve(self, raw: str, what: str = "Path") -> str:
        """``raw`` made canonical: no NUL, absolute (or ``~``), ``realpath``-resolved; not yet checked."""
        if "\x00" in raw:
            raise ServiceError(f"{what} contains a NUL character")
        expanded = os.path.expanduser(raw.strip())
        if not os.path.isabs(expanded):
            raise ServiceError(f"{what} must be absolute (or start with ~): {raw!r} is relative")
        try:
            return os.path.realpath(expanded)
        except (OSError, ValueError) as exc:
            raise ServiceError(f"Invalid {what.lower()} {raw!r}: {exc}") from None

    def inside_roots(self, real: str) -> bool:
        """Whether a resolved path is within a configured root (always, when none is configured)."""
        return not self.roots or any(is_within(real, r) for r in self.roots)

    def leads_to_root(self, real: str) -> bool:
        """Whether a resolved path is a strict ancestor of a configured root (``/``, ``~``...)."""
        return any(is_within(r, real) and r != real for r in self.roots)

    def check(self, real: str, shown: str | None = None) -> str:
        """``real`` (already resolved) when a project may live there, else a soft error saying why."""
        shown = shown or real
        if any(is_within(real, r) for r in SYSTEM_ROOTS):
            raise ServiceError(f"Path is not allowed for a project: {shown}")
        if not self.inside_roots(real):
            where = shown if shown == real else f"{shown} (resolves to {real})"
            raise ServiceError(
                f"Path {where} is outside the permitted project roots: {', '.join(self.roots)}"
            )
        return real

    def project_path(self, raw: str, what: str = "Git repository path") -> str:
        """A client's project path, resolved and checked: what is stored."""
        return self.check(self.resolve(raw, what), raw.strip())

    def check_stored(self, stored: str) -> str:
        """A stored project path checked again before use: it must still resolve inside the roots.

        Returns ``stored`` unchanged (git worktrees and containers know the repository by it).
        """
        try:
            real = os.path.realpath(stored)
        except (OSError, ValueError) as exc:
            raise ServiceError(f"The project's repository path {stored!r} is unusable: {exc}") from None
        if any(is_within(real, r) for r in SYSTEM_ROOTS) or not self.inside_roots(real):
            raise ServiceError(
                f"The project's repository path {stored} now resolves to {real}, outside the permitted "
                f"project roots ({', '.join(self.roots) or 'system directories are never allowed'}); "
                "refusing to use it"
            )
        return stored
