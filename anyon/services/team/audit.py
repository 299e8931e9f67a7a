"""The audit trail: who created, started, stopped, merged, pushed or deleted what, as JSON lines.

One file per UTC day, ``<data_dir>/audit/audit-YYYY-MM-DD.jsonl`` (mode 0600), each line a complete JSON
object written with one ``write`` in append mode, so concurrent writers never interleave a line. Files
older than ``retention.audit_days`` are deleted by a daily pass. Lines name the account (login and id),
the action, the object and the project it belongs to, and never carry request bodies or secrets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

_FILE = re.compile(r"^audit-(\d{4}-\d{2}-\d{2})\.jsonl$")
PRUNE_INTERVAL_SECONDS = 6 * 3600


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuditLog:
    def __init__(
        self, directory: str, retention_days: float, *, clock: Callable[[], dt.datetime] = _now
    ) -> None:
        self.directory = directory
        self.retention_days = retention_days
        self._clock = clock
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        """Append one line; an audit failure is logged, never turned into a failed request."""
        now = self._clock()
        line = json.dumps({"ts": now.isoformat(timespec="milliseconds"), **entry}, sort_keys=True)
        path = os.path.join(self.directory, f"audit-{now:%Y-%m-%d}.jsonl")
        try:
            with self._lock:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                try:
                    os.write(fd, (line + "\n").encode())
                finally:
                    os.close(fd)
        except OSError as exc:
            log.error("could not write the audit line to %s: %s", path, exc)

    def _files(self) -> list[tuple[dt.date, str]]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = _FILE.match(name)
            if match:
                try:
                    day = dt.date.fromisoformat(match.group(1))
                except ValueError:
                    continue
                found.append((day, os.path.join(self.directory, name)))
        return sorted(found)

    def prune(self) -> int:
        """Delete the files of days older than the retention; returns how many were deleted."""
        if self.retention_days <= 0:
            return 0
        cutoff = (self._clock() - dt.timedelta(days=self.retention_days)).date()
        removed = 0
        for day, path in self._files():
            if day < cutoff:
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def entries(self, since: dt.date | None = None) -> Iterator[dict[str, Any]]:
        """Every recorded line, oldest first (a damaged line is skipped)."""
        for day, path in self._files():
            if since is not None and day < since:
                continue
            with open(path, encoding="utf-8") as handle:
                for raw in handle:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(entry, dict):
                        yield entry

    async def prune_loop(self) -> None:
        while True:
            try:
                removed = await asyncio.to_thread(self.prune)
                if removed:
                    log.info("deleted %d audit file(s) older than %s days", removed, self.retention_days)
            except OSError as exc:
                log.warning("audit retention pass failed: %s", exc)
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)


def matches(entry: dict[str, Any], *, obj: str | None, user: str | None, action: str | None) -> bool:
    """The filter of ``anyon audit``: an id matches the object, its task, attempt or project."""
    if user is not None and user not in (entry.get("user"), entry.get("user_id")):
        return False
    if action is not None and action not in str(entry.get("action", "")):
        return False
    if obj is not None:
        ids = {entry.get(k) for k in ("object_id", "project_id", "task_id", "attempt_id")}
        return obj in ids
    return True
