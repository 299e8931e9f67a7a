"""Background upkeep the deployment runs after start-up (spec §6, ARCHITECTURE decision 7).

* orphan sweep: worktree folders no attempt owns are removed (or only logged in dry-run mode);
* expiry: every ``retention.expiry_interval_minutes``, worktrees idle longer than
  ``retention.worktree_hours`` with nothing running are removed and marked ``worktree_deleted``, and
  so are attempts whose folder vanished; in cloud mode their containers go too;
* log retention, in the same pass: stored logs of processes that ended more than ``retention.log_days``
  ago are deleted, then the oldest ended ones while all logs exceed ``retention.log_total_bytes``
  (running processes keep theirs);
* container reconcile (cloud): at start-up (run by :meth:`Services.start` before the start-up repair) and
  every ``docker.reconcile_interval_seconds``: containers of live attempts are adopted and, when they may
  still run processes nobody supervises (a crash, a lost Engine), swept; every other container of this
  instance is removed with its secrets directory and its worktree. A run that finds the Engine away is
  logged and retried at the next tick — a task deleted during an outage leaks nothing for long;
* image clean-up, in the expiry pass and at start-up: uploads no task or draft uses a day later go;
* file-search warm-up for the most recently active projects.

Each job is written to be retried: a failure is logged by the deployment and the next run starts over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import peewee as pw

from anyon.config.model import RetentionSettings
from anyon.services.board.images import ImageService
from anyon.services.db.columns import utc_now
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess, Project, Task, TaskAttempt
from anyon.services.git.file_search import FileSearch
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.logs.logstore import LogStore
from anyon.services.runners.contracts import ContainerRunner, ReconcileResult

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(
        self,
        database: Database,
        worktrees: WorktreeManager,
        file_search: FileSearch,
        retention: RetentionSettings,
        *,
        containers: ContainerRunner | None = None,
        reconcile_interval: float = 60.0,
        logstore: LogStore | None = None,
        images: ImageService | None = None,
    ) -> None:
        self._images = images
        self._db = database
        self._logstore = logstore
        self._worktrees = worktrees
        self._search = file_search
        self._retention = retention
        self._containers = containers
        self._reconcile_interval = reconcile_interval

    # -- jobs (async entry points the deployment schedules) --------------------------------------
    async def startup(self) -> None:
        if self._retention.orphan_sweep:
            await asyncio.to_thread(self.sweep_orphans)
        try:
            await asyncio.to_thread(self.prune_logs)
        except Exception:
            log.exception("log retention at start-up failed; the expiry pass retries it")
        try:
            await asyncio.to_thread(self.prune_images)
        except Exception:
            log.exception("image clean-up at start-up failed; the expiry pass retries it")
        await asyncio.to_thread(self.warm_search)

    async def expiry_loop(self) -> None:
        interval = max(1.0, self._retention.expiry_interval_minutes * 60)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_once()
            except Exception:
                log.exception("worktree expiry failed; retrying in %.0f s", interval)
            try:
                await asyncio.to_thread(self.prune_logs)
            except Exception:
                log.exception("log retention failed; retrying in %.0f s", interval)
            try:
                await asyncio.to_thread(self.prune_images)
            except Exception:
                log.exception("image clean-up failed; retrying in %.0f s", interval)

    async def reconcile_loop(self) -> None:
        """Cloud: reconcile the containers every ``docker.reconcile_interval_seconds``; never raises."""
        if self._containers is None:
            return
        interval = max(0.1, self._reconcile_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile_containers()
            except Exception as exc:
                log.warning(
                    "container reconcile failed (%s: %s); retrying in %.0f s",
                    type(exc).__name__,
                    exc,
                    interval,
                )

    # -- the work ------------------------------------------------------------------------------------
    def prune_images(self, now: dt.datetime | None = None) -> int:
        """Uploaded images no task or draft uses (after a grace period) are deleted with their files."""
        return self._images.delete_orphans(now) if self._images is not None else 0

    def prune_logs(self, now: dt.datetime | None = None) -> list[str]:
        """One log-retention pass; returns the ids of the processes whose logs were deleted."""
        if self._logstore is None:
            return []
        days, limit = self._retention.log_days, self._retention.log_total_bytes
        if days <= 0 and limit <= 0:
            return []
        before = (now or utc_now()) - dt.timedelta(days=days) if days > 0 else None
        with self._db.connection():
            pruned = self._logstore.prune(ended_before=before, max_total_bytes=limit if limit > 0 else None)
        if pruned:
            log.info("log retention deleted the logs of %d ended process(es)", len(pruned))
        return [str(eid) for eid in pruned]

    def sweep_orphans(self) -> list[str]:
        with self._db.connection():
            known = [row.container_ref for row in TaskAttempt.select(TaskAttempt.container_ref)]
        removed = self._worktrees.sweep_orphans(known, dry_run=self._retention.orphan_sweep_dry_run)
        if removed:
            verb = "would remove" if self._retention.orphan_sweep_dry_run else "removed"
            log.info("orphan sweep %s %d worktree folder(s)", verb, len(removed), extra={"paths": removed})
        return removed

    def _last_activity(self) -> list[tuple[TaskAttempt, str, dt.datetime, bool]]:
        with self._db.connection():
            return self._last_activity_rows()

    def _last_activity_rows(self) -> list[tuple[TaskAttempt, str, dt.datetime, bool]]:
        latest = (
            ExecutionProcess.select(
                ExecutionProcess.task_attempt,
                pw.fn.MAX(ExecutionProcess.completed_at).alias("last_done"),
                pw.fn.SUM(pw.Case(None, [(ExecutionProcess.status == "running", 1)], 0)).alias("running"),
            )
            .group_by(ExecutionProcess.task_attempt)
            .dicts()
        )
        stats: dict[Any, dict[str, Any]] = {row["task_attempt"]: row for row in latest}  # type: ignore[index,misc]
        rows = (
            TaskAttempt.select(TaskAttempt, Project.git_repo_path)
            .join(Task, on=(TaskAttempt.task == Task.id))
            .join(Project, on=(Task.project == Project.id))
            .where(TaskAttempt.worktree_deleted == False)  # noqa: E712 - peewee expression
        )
        out: list[tuple[TaskAttempt, str, dt.datetime, bool]] = []
        for attempt in rows:
            stat = stats.get(attempt.id, {})
            last: Any = stat.get("last_done") or attempt.updated_at
            if isinstance(last, str):
                last = ExecutionProcess.completed_at.python_value(last)
            out.append((attempt, attempt.task.project.git_repo_path, last, bool(stat.get("running"))))
        return out

    async def expire_once(self, now: dt.datetime | None = None) -> list[str]:
        """One expiry pass; returns the worktree paths marked deleted."""
        candidates = await asyncio.to_thread(self._last_activity)
        expired: list[tuple[TaskAttempt, str | None]] = []
        vanished: list[TaskAttempt] = []
        for attempt, repo_path, last, running in candidates:
            if not attempt.container_ref:
                continue
            if self._worktrees.vanished([attempt.container_ref]):
                vanished.append(attempt)
            elif self._worktrees.is_expired(last, self._retention.worktree_hours, running, now=now):
                expired.append((attempt, repo_path))
        gone = await asyncio.to_thread(
            self._worktrees.expire, [(repo, str(a.container_ref)) for a, repo in expired]
        )
        done = [a for a, _ in expired if a.container_ref in gone] + vanished
        if self._containers is not None:
            for attempt in done:
                try:
                    await self._containers.remove_container(str(attempt.id))
                except Exception:
                    log.exception("removing the container of expired attempt %s failed", attempt.id)
        if done:

            def mark() -> None:
                with self._db.connection():
                    TaskAttempt.update(worktree_deleted=True, updated_at=utc_now()).where(
                        TaskAttempt.id.in_([a.id for a in done])
                    ).execute()

            await asyncio.to_thread(mark)
            log.info("expired %d worktree(s)", len(done), extra={"paths": [a.container_ref for a in done]})
        return [str(a.container_ref) for a in done]

    async def reconcile_containers(self) -> ReconcileResult:
        """Adopt/sweep live attempts' containers, remove the others and the worktrees they served.

        Cloud mode only (callers check that there is a container runner).
        """
        containers = self._containers
        if containers is None:
            raise RuntimeError("no container runner to reconcile (local mode)")

        def live_ids() -> set[str]:
            with self._db.connection():
                rows = TaskAttempt.select(TaskAttempt.id).where(TaskAttempt.worktree_deleted == False)  # noqa: E712
                return {str(r.id) for r in rows}

        async def load_live() -> set[str]:
            return await asyncio.to_thread(live_ids)

        result = await containers.reconcile(load_live)
        if result.worktrees:
            await asyncio.to_thread(self._remove_worktrees, result.worktrees)
        if result.adopted or result.removed or result.swept:
            log.info(
                "container reconcile",
                extra={"adopted": len(result.adopted), "removed": len(result.removed), "swept": result.swept},
            )
        return result

    def _remove_worktrees(self, paths: list[str]) -> None:
        """Worktrees of removed containers, unless an attempt still names them or they lie elsewhere."""
        with self._db.connection():
            known = {row.container_ref for row in TaskAttempt.select(TaskAttempt.container_ref)}
        for path in paths:
            if path in known or not self._worktrees.is_managed(path):
                continue
            try:
                if self._worktrees.remove(None, path):
                    log.info("removed the worktree %s of a deleted attempt", path)
            except Exception as exc:
                log.warning("could not remove the worktree %s: %s", path, exc)

    def warm_search(self, limit: int = 3) -> None:
        with self._db.connection():
            projects = list(
                Project.select(Project.git_repo_path).order_by(Project.updated_at.desc()).limit(limit)
            )
        for project in projects:
            try:
                self._search.warm(project.git_repo_path)
            except Exception as exc:
                log.warning("file-search warm-up of %s failed: %s", project.git_repo_path, exc)
