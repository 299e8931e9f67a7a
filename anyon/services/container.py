"""The set of services one deployment owns, built in the seed's order: config → DB → services.

Every service gets what it needs through its constructor; this is the only place that knows how
they fit together, so the API and the tests build exactly what the server runs.

This module is the assembly: which services exist (:class:`Services`), the order they are built in
(:func:`build_services`) and what starting and stopping the server does. How each piece is made from the
settings — the agent homes and login, the runner, the execution engine's parts — is in
``services/composition/``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from anyon.config.model import AnyonConfig
from anyon.services.agents.agent_login import AgentLoginService
from anyon.services.agents.approvals import ApprovalService
from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.board.attempt_git import AttemptGitService
from anyon.services.board.attempt_repos import IsolatedAttemptRepos, SharedAttemptRepos
from anyon.services.board.attempts import AttemptService, ProcessService
from anyon.services.board.changes import ChangeNotifier
from anyon.services.board.drafts import DraftService
from anyon.services.board.events import EventBus
from anyon.services.board.filesystem import FilesystemService
from anyon.services.board.images import ImageService
from anyon.services.board.onboarding import Onboarding
from anyon.services.board.projects import ProjectService
from anyon.services.board.tags import TagService
from anyon.services.board.tasks import TaskService
from anyon.services.board.user_config import UserConfigService
from anyon.services.board.user_scoped_config import UserScopedConfig
from anyon.services.composition.agents import agent_homes_for, login_service_for
from anyon.services.composition.executions import executions_for
from anyon.services.composition.remote_refresh import remote_refresh_for
from anyon.services.composition.runners import (
    agent_home_refresh_for,
    ready_worktrees_for,
    runner_for,
    warm_pool_for,
)
from anyon.services.db import queries
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess
from anyon.services.db.readcache import ReadCache
from anyon.services.executions.core import EngineCore
from anyon.services.executions.engine import ExecutionService
from anyon.services.git import GitService
from anyon.services.git.file_search import FileSearch
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.github.service import GitHub, build_github
from anyon.services.logs.logstore import LogStore
from anyon.services.maintenance import Maintenance
from anyon.services.mcp.files import McpConfigService
from anyon.services.notifications.notifier import Notifier
from anyon.services.notifications.sounds import SoundLibrary
from anyon.services.runners.contracts import ContainerRunner
from anyon.services.team.service import Team, build_team

log = logging.getLogger(__name__)

#: Longest the start-up waits for the container reconcile (a hung Engine must not block serving).
STARTUP_RECONCILE_SECONDS = 30.0


@dataclass
class Services:
    """What one deployment runs: the API and the background jobs reach every service through this."""

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
    github: GitHub
    sounds: SoundLibrary
    notifier: Notifier
    mcp: McpConfigService
    onboarding: Onboarding
    approvals: ApprovalService
    agent_login: AgentLoginService
    docker: ContainerRunner | None = None  # cloud mode's runner of per-attempt containers
    team: Team | None = None  # cloud mode: accounts, access scope, audit (services/team/service.py)
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
        await self.agent_login.end_all()
        await self.executions.stop_all()
        if self.docker is not None:
            await self.docker.close()
        self.events.close()
        self.github.close()
        await asyncio.to_thread(self.database.close_all)

    def background_jobs(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        return [
            ("startup-maintenance", self.maintenance.startup),
            ("worktree-expiry", self.maintenance.expiry_loop),
            ("container-reconcile", self.maintenance.reconcile_loop),
            ("pr-monitor", self.github.monitor.loop),
            *(self.team.jobs() if self.team is not None else []),
            *self.extra_jobs,
        ]


def build_services(config: AnyonConfig, **overrides: Any) -> Services:
    """Every service of one deployment, built from its settings; ``overrides`` replace built ones by name."""
    database = Database.from_url(config.database_url, busy_timeout_ms=config.database.busy_timeout_ms)
    bus = EventBus()
    changes = ChangeNotifier(database, bus)
    # cloud mode: each account's own UI config and GitHub token (services/board/user_scoped_config.py)
    user_config = (UserScopedConfig if config.is_cloud else UserConfigService)(config.paths.data_dir)

    def user_workspace() -> str | None:
        # Local mode honours the UI's workspace_dir; cloud mode always uses the configured one.
        return None if config.is_cloud else user_config.get().get("workspace_dir")

    git = GitService()
    worktrees = WorktreeManager(config.paths.worktree_dir, isolated=config.is_cloud)
    logstore = LogStore(database)
    profiles = ExecutorProfiles(profiles_path=os.path.join(config.paths.data_dir, "profiles.json"))
    file_search = FileSearch()
    drafts = DraftService(database, bus)
    # the board and the project list are polled; their answers are kept while the database is unchanged
    read_cache = ReadCache(database.data_version if config.database.read_cache else None)
    projects = ProjectService(
        database,
        changes,
        git,
        workspace_dir=config.paths.workspace_dir,
        project_roots=config.paths.project_roots,
        user_workspace_dir=user_workspace,
        cache=read_cache,
    )
    images = ImageService(database, os.path.join(config.paths.data_dir, "images"), config.images.max_bytes)
    sounds = SoundLibrary()
    notifier = Notifier(
        database,
        user_config,
        sounds,
        desktop=config.notifications.desktop,
        push_command=config.notifications.push_command,
        sound_command=config.notifications.sound_command,
        sound_dir=os.path.join(config.paths.temp_dir, "sounds"),
    )
    filesystem = FilesystemService(paths=projects.paths)
    homes, home_of_attempt = agent_homes_for(config, database)
    runner, docker_runner = runner_for(config, home_of_attempt)
    approvals = ApprovalService(config.executions.approval_timeout_seconds)
    repos = (
        IsolatedAttemptRepos(git, worktrees, docker_runner)
        if docker_runner is not None
        else SharedAttemptRepos(git, worktrees)
    )
    executions = executions_for(
        config,
        EngineCore(database, changes, logstore, config.executions),
        profiles,
        git,
        worktrees,
        runner,
        user_config,
        provisioner=docker_runner,
        warm_pool=(
            warm_pool_for(docker_runner, worktrees, projects, config.executions.ready_worktrees > 0)
            if docker_runner is not None
            else None
        ),
        ready_worktrees=ready_worktrees_for(config, worktrees, projects) if docker_runner is None else None,
        repos=repos,
        paths=projects.paths,
        drafts=drafts,
        images=images,
        approvals=approvals,
        on_attempt_finished=notifier.attempt_finished,
    )
    attempt_git = AttemptGitService(
        database,
        changes,
        git,
        worktrees,
        file_search,
        repos,
        paths=projects.paths,
        remote_refresh=remote_refresh_for(config, user_config).refresh,
    )
    services = Services(
        config=config,
        database=database,
        events=bus,
        changes=changes,
        user_config=user_config,
        profiles=profiles,
        projects=projects,
        tasks=TaskService(database, changes, read_cache),
        attempts=AttemptService(database),
        processes=ProcessService(database),
        filesystem=filesystem,
        tags=TagService(database),
        images=images,
        git=git,
        worktrees=worktrees,
        logstore=logstore,
        executions=executions,
        attempt_git=attempt_git,
        file_search=file_search,
        sounds=sounds,
        notifier=notifier,
        onboarding=Onboarding(user_config, projects, filesystem),
        mcp=McpConfigService(
            (lambda: homes.ensure(homes.owner())) if config.is_cloud else homes.shared,
            follow_links=not config.is_cloud,
        ),
        approvals=approvals,
        drafts=drafts,
        maintenance=Maintenance(
            database,
            worktrees,
            file_search,
            config.retention,
            containers=docker_runner,
            reconcile_interval=config.docker.reconcile_interval_seconds,
            logstore=logstore,
            images=images,
        ),
        github=build_github(config, database, changes, user_config, projects, attempt_git),
        agent_login=login_service_for(config, homes, agent_home_refresh_for(docker_runner)),
        docker=docker_runner,
        team=build_team(config, database),
    )
    for name, value in overrides.items():
        setattr(services, name, value)
    return services
