"""The set of services one deployment owns, built in the seed's order: config → DB → services.

Every service gets what it needs through its constructor; this is the only place that knows how
they fit together, so the API and the tests build exactly what the server runs.

Longer than ~400 lines on purpose: it is the one composition root, and the wiring of the execution
engine's parts (:func:`executions_for`) is kept beside the rest so the whole graph reads in one file.
It splits along the domain packages once ``services/`` is grouped by domain (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import shlex
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anyon.config.model import AnyonConfig
from anyon.config.redact import url_secrets
from anyon.services.agents.agent_home import AgentHomes, ensure_agent_home
from anyon.services.agents.agent_login import AgentLoginService
from anyon.services.agents.approvals import ApprovalService
from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.agents.launchers import AGENT_CLIS, AgentLauncher
from anyon.services.board.attempt_git import AttemptGitService
from anyon.services.board.attempt_repos import AttemptRepos, IsolatedAttemptRepos, SharedAttemptRepos
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
from anyon.services.db import queries
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess, TaskAttempt, parse_uuid
from anyon.services.db.readcache import ReadCache
from anyon.services.executions.cleanup import AttemptCleanup
from anyon.services.executions.conversation import Conversation
from anyon.services.executions.core import EngineCore, FinishedHook
from anyon.services.executions.engine import EngineParts, ExecutionService
from anyon.services.executions.finish import ProcessFinisher
from anyon.services.executions.head_start import HeadStarts
from anyon.services.executions.output import ProcessOutput
from anyon.services.executions.preparation import AttemptPreparation
from anyon.services.executions.records import ProcessRecords
from anyon.services.executions.slots import ExecutionSlots
from anyon.services.executions.start import AttemptStarter
from anyon.services.executions.stopping import ProcessStopper
from anyon.services.executions.supervisor import ProcessSupervisor
from anyon.services.git import GitService
from anyon.services.git.file_search import FileSearch
from anyon.services.git.paths import PathPolicy
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.github.service import GitHub, build_github
from anyon.services.logs.logstore import LogStore
from anyon.services.maintenance import Maintenance
from anyon.services.mcp.files import McpConfigService
from anyon.services.notifications.notifier import Notifier
from anyon.services.notifications.sounds import SoundLibrary
from anyon.services.runners.base import Runner
from anyon.services.runners.contracts import ContainerProvisioner, ContainerRunner
from anyon.services.runners.environment import agent_environment, without_server_secrets
from anyon.services.runners.host import HostRunner
from anyon.services.team.service import Team, build_team

if TYPE_CHECKING:
    from anyon.services.git.ready_worktrees import ReadyWorktrees
    from anyon.services.runners.warm import WarmPool

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


def instance_id(config: AnyonConfig) -> str:
    """Names this server's containers (label ``anyon.instance``): derived from its data directory."""
    return hashlib.sha256(os.path.realpath(config.paths.data_dir).encode()).hexdigest()[:16]


def _warm_pool_for(
    docker_runner: ContainerRunner,
    worktrees: WorktreeManager,
    projects: ProjectService,
    checkouts_ahead: bool,
) -> WarmPool:
    """Cloud mode: started containers kept ready per recently active project (runners/warm.py), their
    folders filled with a checkout of the project's branch when ``executions.ready_worktrees`` > 0."""
    from anyon.services.git.checkouts_ahead import AheadCheckouts
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
        checkouts=AheadCheckouts(worktrees) if checkouts_ahead else None,
    )


def _ready_worktrees_for(
    config: AnyonConfig, worktrees: WorktreeManager, projects: ProjectService
) -> ReadyWorktrees:
    """Local mode: checkouts made ahead per recently active project (git/ready_worktrees.py)."""
    from anyon.services.git.ready_worktrees import ReadyWorktrees

    async def project_exists(project_id: str) -> bool:
        return await asyncio.to_thread(projects.exists, uuid.UUID(project_id))

    settings = config.executions
    return ReadyWorktrees(
        worktrees,
        size=settings.ready_worktrees,
        max_projects=settings.ready_worktree_projects,
        idle_seconds=settings.ready_worktree_idle_seconds,
        project_exists=project_exists,
    )


def agent_homes_for(config: AnyonConfig, database: Database) -> tuple[AgentHomes, Callable[[str], str]]:
    """The agent homes (one per account in cloud mode) and, for the Docker runner, the home of the
    account that started an attempt (``task_attempts.user_id``; none recorded: the shared home)."""
    homes = AgentHomes(agent_home_for(config), per_account=config.is_cloud)

    def of_attempt(attempt_id: str) -> str:
        oid = parse_uuid(attempt_id)
        with database.connection():
            row = (
                TaskAttempt.select(TaskAttempt.user_id).where(TaskAttempt.id == oid).first()
                if oid is not None
                else None
            )
        return homes.ensure(row.user_id if row is not None else None)

    return homes, of_attempt


def _runner_for(
    config: AnyonConfig, home_of: Callable[[str], str] | None = None
) -> tuple[Runner, ContainerRunner | None]:
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
    agent_home = str(ensure_agent_home(agent_home_for(config)))
    if config.docker.runner == "swarm":  # one service per attempt, placed on a node by the manager
        from anyon.services.runners.swarm import SwarmRunner

        swarm = SwarmRunner(
            config.docker,
            instance_id(config),
            secrets_root,
            host_env=host_env,
            agent_home=agent_home,
            agent_home_of=home_of,
        )
        return swarm, swarm
    docker_runner = DockerRunner(
        config.docker,
        instance_id(config),
        secrets_root,
        host_env=host_env,
        agent_home=agent_home,
        agent_home_of=home_of,
    )
    return docker_runner, docker_runner


def launcher_for(config: AnyonConfig) -> AgentLauncher:
    """The ``[launchers]`` settings, keyed by executor name."""
    modes = {f.name.upper(): getattr(config.launchers, f.name) for f in dataclasses.fields(config.launchers)}
    return AgentLauncher(modes)


def agent_env_for(config: AnyonConfig) -> dict[str, str]:
    """Local mode with an agent home: agents run with it as HOME (where their logins are kept).

    Cloud containers have their own HOME, filled from the agent home when they start (runners/docker.py).
    """
    if config.is_cloud or not config.agents.home:
        return {}
    ensure_agent_home(config.agents.home)
    return {"HOME": config.agents.home}


def agent_home_for(config: AnyonConfig) -> str:
    """``agents.home``; unset, the user's own HOME locally (where their CLIs keep logins) or, in cloud
    mode, ``<base_dir>/agent-home``."""
    if config.agents.home:
        return config.agents.home
    if config.is_cloud:
        return os.path.join(config.paths.base_dir, "agent-home")
    return os.path.expanduser("~")


def login_service_for(config: AnyonConfig, homes: AgentHomes | None = None) -> AgentLoginService:
    """The login terminal: ``agents.claude_login_command``, else the Claude Code CLI (installed or npx)."""
    env = agent_environment(
        os.environ, config.executions.host_env_allowlist, secrets=url_secrets(config.database_url)
    )
    custom = config.agents.claude_login_command
    command = shlex.split(custom) if custom else ["claude"]

    def resolve(argv: list[str]) -> list[str]:
        if custom or shutil.which("claude", path=env.get("PATH")):
            return argv
        return AGENT_CLIS["CLAUDE_CODE"].npx_argv

    return AgentLoginService(
        agent_home_for(config),
        command,
        env,
        timeout_seconds=config.agents.login_timeout_seconds,
        resolve=resolve,
        own_home=bool(config.agents.home) or config.is_cloud,
        homes=homes,
    )


def _slots_for(config: AnyonConfig) -> ExecutionSlots:
    """The execution slots: the server-wide limit, with a per-account share in cloud mode with accounts
    (executions/user_slots.py)."""
    settings = config.executions
    if not config.is_cloud or settings.max_concurrent_per_user <= 0:
        return ExecutionSlots(settings.max_concurrent)
    from anyon.services.executions.user_slots import UserSlots

    return UserSlots(settings.max_concurrent, settings.max_concurrent_per_user)


def executions_for(
    config: AnyonConfig,
    core: EngineCore,
    profiles: ExecutorProfiles,
    git: GitService,
    worktrees: WorktreeManager,
    runner: Runner,
    user_config: UserConfigService,
    *,
    provisioner: ContainerProvisioner | None,
    warm_pool: WarmPool | None,
    ready_worktrees: ReadyWorktrees | None,
    repos: AttemptRepos,
    paths: PathPolicy,
    drafts: DraftService | None,
    images: ImageService | None,
    approvals: ApprovalService | None,
    on_attempt_finished: FinishedHook | None = None,
) -> ExecutionService:
    """The execution engine's parts (services/executions/), each given what it works with.

    A warm pool needs a container to mount a folder ``git worktree add`` then fills in place; ready
    worktrees are local mode's. An attempt with nothing left to run notifies, then sends its queued
    follow-up.
    """
    usable_pool = warm_pool is not None and warm_pool.enabled and worktrees.fills_existing_dir
    usable_ready = ready_worktrees is not None and ready_worktrees.enabled and provisioner is None
    head_starts = HeadStarts(
        core,
        git,
        warm_pool=warm_pool if provisioner is not None and usable_pool else None,
        ready_worktrees=ready_worktrees if usable_ready else None,
    )
    preparation = AttemptPreparation(
        core, worktrees, head_starts, provisioner=provisioner, paths=paths, images=images
    )
    records = ProcessRecords(core, git, repos)
    output = ProcessOutput(core, records)
    finisher = ProcessFinisher(core, output, records, repos)
    supervisor = ProcessSupervisor(
        core,
        output,
        records,
        finisher,
        runner,
        profiles,
        _slots_for(config),
        shell="/bin/sh" if provisioner else os.environ.get("SHELL") or "sh",
        launcher=launcher_for(config),
        agent_env=agent_env_for(config),
        approvals=approvals,
    )
    stopper = ProcessStopper(core, records, preparation, provisioner)
    conversation = Conversation(
        core,
        preparation,
        supervisor,
        stopper,
        profiles=profiles,
        git=git,
        repos=repos,
        images=images,
        drafts=drafts,
    )
    if on_attempt_finished is not None:
        finisher.finished_hooks.append(on_attempt_finished)
    if drafts is not None:

        def send_queued(attempt_id: uuid.UUID, _process_id: uuid.UUID) -> None:
            core.spawn_background(conversation.send_queued(attempt_id), f"queued:{attempt_id}")

        finisher.finished_hooks.append(send_queued)
    starter = AttemptStarter(
        core,
        head_starts,
        preparation,
        supervisor,
        records,
        profiles=profiles,
        git=git,
        worktrees=worktrees,
        user_config=user_config,
        paths=paths,
    )
    parts = EngineParts(
        core=core,
        head_starts=head_starts,
        preparation=preparation,
        starter=starter,
        supervisor=supervisor,
        stopper=stopper,
        conversation=conversation,
        cleanup=AttemptCleanup(core, worktrees, provisioner),
    )
    return ExecutionService(parts)


def build_services(config: AnyonConfig, **overrides: Any) -> Services:
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
    runner, docker_runner = _runner_for(config, home_of_attempt)
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
            _warm_pool_for(docker_runner, worktrees, projects, config.executions.ready_worktrees > 0)
            if docker_runner is not None
            else None
        ),
        ready_worktrees=_ready_worktrees_for(config, worktrees, projects) if docker_runner is None else None,
        repos=repos,
        paths=projects.paths,
        drafts=drafts,
        images=images,
        approvals=approvals,
        on_attempt_finished=notifier.attempt_finished,
    )
    attempt_git = AttemptGitService(
        database, changes, git, worktrees, file_search, repos, paths=projects.paths
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
        agent_login=login_service_for(config, homes),
        docker=docker_runner,
        team=build_team(config, database),
    )
    for name, value in overrides.items():
        setattr(services, name, value)
    return services
