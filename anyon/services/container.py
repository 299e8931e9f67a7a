"""The set of services one deployment owns, built in the seed's order: config → DB → services.

Every service gets what it needs through its constructor; this is the only place that knows how
they fit together, so the API and the tests build exactly what the server runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from anyon.config.model import AnyonConfig
from anyon.config.redact import url_secrets
from anyon.services.attempt_git import AttemptGitService
from anyon.services.attempt_repos import IsolatedAttemptRepos, SharedAttemptRepos
from anyon.services.attempts import AttemptService, ProcessService
from anyon.services.changes import ChangeNotifier
from anyon.services.db import queries
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess
from anyon.services.drafts import DraftService
from anyon.services.events import EventBus
from anyon.services.executions import ExecutionService
from anyon.services.executors import ExecutorProfiles
from anyon.services.file_search import FileSearch
from anyon.services.filesystem import FilesystemService
from anyon.services.git import GitService
from anyon.services.logstore import LogStore
from anyon.services.maintenance import Maintenance
from anyon.services.projects import ProjectService
from anyon.services.runners.base import Runner
from anyon.services.runners.environment import agent_environment, without_server_secrets
from anyon.services.runners.host import HostRunner
from anyon.services.tags import ImageService, TagService
from anyon.services.tasks import TaskService
from anyon.services.user_config import UserConfigService
from anyon.services.worktrees import WorktreeManager

log = logging.getLogger(__name__)

#: Longest the start-up waits for the container reconcile (a hung Engine must not block serving).
STARTUP_RECONCILE_SECONDS = 30.0


@dataclass
class Services:
    config: AnyonConfig
    database: Database
    events: EventBus
    changes: ChangeNotifier
    user_config: UserConfigService
    profiles: ExecutorProfiles
    projects: ProjectService
    tasks: TaskService
    attempts: AttemptService
    processes: ProcessService
    filesystem: FilesystemService
    tags: TagService
    images: ImageService
    git: GitService
    worktrees: WorktreeManager
    logstore: LogStore
    executions: ExecutionService
    attempt_git: AttemptGitService
    drafts: DraftService
    maintenance: Maintenance
    file_search: FileSearch
    docker: Any = None  # the DockerRunner in cloud mode
    extra_jobs: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    # set when the server begins to shut down: endless streams end themselves
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Bind the event bus to the serving loop and repair what a previous run left (spec §4.1).

        Cloud mode: the containers are reconciled first, which sweeps the adopted ones — agents a crashed
        run left running are killed *before* their processes are marked ``failed`` (never both "failed"
        and running). If the Engine does not answer in time, the repair goes ahead and the periodic
        reconcile sweeps those containers once it answers; until then any new command in such a container
        sweeps it first (DockerRunner.spawn).
        """
        self.events.bind_loop(asyncio.get_running_loop())
        if self.docker is not None:
            try:
                await asyncio.wait_for(self.maintenance.reconcile_containers(), STARTUP_RECONCILE_SECONDS)
            except Exception as exc:
                log.warning(
                    "container reconcile at start-up failed (%s: %s); retried periodically",
                    type(exc).__name__,
                    exc,
                )
        repaired, settled = await asyncio.to_thread(self._repair_statuses)
        if repaired:
            log.warning("marked %d execution process(es) left running by a previous run as failed", repaired)
        if settled:
            log.warning("moved %d task(s) left in progress with nothing running to review", settled)

    def _repair_statuses(self) -> tuple[int, int]:
        with self.database.connection():
            left = [
                row.id
                for row in ExecutionProcess.select(ExecutionProcess.id).where(
                    ExecutionProcess.status == "running"
                )
            ]
            repaired = queries.mark_running_processes_failed_at_startup()
            why = "stopped and its container swept" if self.docker is not None else "no longer supervised"
            for process_id in left:  # the reason, where the user reads the process's output
                self.logstore.append(
                    process_id,
                    "stderr",
                    f"The server stopped while this process ran; it was {why} at restart.\n",
                )
            return repaired, queries.settle_idle_tasks()

    async def stop(self) -> None:
        await self.executions.stop_all()
        if self.docker is not None:
            await self.docker.close()
        self.events.close()
        await asyncio.to_thread(self.database.close)

    def background_jobs(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        return [
            ("startup-maintenance", self.maintenance.startup),
            ("worktree-expiry", self.maintenance.expiry_loop),
            ("container-reconcile", self.maintenance.reconcile_loop),
            *self.extra_jobs,
        ]


def instance_id(config: AnyonConfig) -> str:
    """Names this server's containers (label ``anyon.instance``): derived from its data directory."""
    return hashlib.sha256(os.path.realpath(config.paths.data_dir).encode()).hexdigest()[:16]


def _warm_pool_for(docker_runner: Any, worktrees: WorktreeManager, projects: ProjectService) -> Any:
    """Cloud mode: started containers kept ready per recently active project (runners/warm.py)."""
    from anyon.services.runners.warm import WarmPool

    async def project_exists(project_id: str) -> bool:
        return await asyncio.to_thread(projects.exists, uuid.UUID(project_id))

    settings = docker_runner.settings
    return WarmPool(
        docker_runner,
        worktrees,
        size=settings.warm_pool_size,
        max_projects=settings.warm_pool_projects,
        idle_seconds=settings.warm_pool_idle_seconds,
        project_exists=project_exists,
    )


def _runner_for(config: AnyonConfig) -> tuple[Runner, Any]:
    """Host processes locally; per-attempt containers in cloud mode (Docker imported only then).

    Either way the agent's environment is an allow-listed part of the server's, without the server's
    own settings and credentials (``ANYON_*``, ``PG*``, the database password...).
    """
    secrets = url_secrets(config.database_url)
    if not config.is_cloud:
        allowlist = config.executions.host_env_allowlist
        return HostRunner(agent_environment(os.environ, allowlist, secrets=secrets)), None
    from anyon.services.runners.docker import DockerRunner

    secrets_root = config.paths.secrets_dir or os.path.join(config.paths.temp_dir, "cloud-secrets")
    host_env = without_server_secrets(os.environ, secrets=secrets)
    if config.docker.runner == "swarm":  # one service per attempt, placed on a node by the manager
        from anyon.services.runners.swarm import SwarmRunner

        swarm = SwarmRunner(config.docker, instance_id(config), secrets_root, host_env=host_env)
        return swarm, swarm
    docker_runner = DockerRunner(config.docker, instance_id(config), secrets_root, host_env=host_env)
    return docker_runner, docker_runner


def build_services(config: AnyonConfig, **overrides: Any) -> Services:
    database = Database.from_url(config.database_url, busy_timeout_ms=config.database.busy_timeout_ms)
    bus = EventBus()
    changes = ChangeNotifier(database, bus)
    user_config = UserConfigService(config.paths.data_dir)

    def user_workspace() -> str | None:
        # Local mode honours the UI's workspace_dir; cloud mode always uses the configured one.
        return None if config.is_cloud else user_config.get().get("workspace_dir")

    git = GitService()
    worktrees = WorktreeManager(config.paths.worktree_dir, isolated=config.is_cloud)
    logstore = LogStore(database)
    profiles = ExecutorProfiles(profiles_path=os.path.join(config.paths.data_dir, "profiles.json"))
    file_search = FileSearch()
    drafts = DraftService(database, bus)
    projects = ProjectService(
        database,
        changes,
        git,
        workspace_dir=config.paths.workspace_dir,
        project_roots=config.paths.project_roots,
        user_workspace_dir=user_workspace,
    )
    runner, docker_runner = _runner_for(config)
    repos = (
        IsolatedAttemptRepos(git, worktrees, docker_runner)
        if docker_runner is not None
        else SharedAttemptRepos(git, worktrees)
    )
    executions = ExecutionService(
        database,
        changes,
        logstore,
        profiles,
        git,
        worktrees,
        runner,
        config.executions,
        user_config,
        provisioner=docker_runner,
        drafts=drafts,
        warm_pool=_warm_pool_for(docker_runner, worktrees, projects) if docker_runner is not None else None,
        repos=repos,
        paths=projects.paths,
    )
    services = Services(
        config=config,
        database=database,
        events=bus,
        changes=changes,
        user_config=user_config,
        profiles=profiles,
        projects=projects,
        tasks=TaskService(database, changes),
        attempts=AttemptService(database),
        processes=ProcessService(database),
        filesystem=FilesystemService(paths=projects.paths),
        tags=TagService(database),
        images=ImageService(database),
        git=git,
        worktrees=worktrees,
        logstore=logstore,
        executions=executions,
        attempt_git=AttemptGitService(
            database, changes, git, worktrees, file_search, repos, paths=projects.paths
        ),
        file_search=file_search,
        drafts=drafts,
        maintenance=Maintenance(
            database,
            worktrees,
            file_search,
            config.retention,
            containers=docker_runner,
            reconcile_interval=config.docker.reconcile_interval_seconds,
            logstore=logstore,
        ),
        docker=docker_runner,
    )
    for name, value in overrides.items():
        setattr(services, name, value)
    return services
