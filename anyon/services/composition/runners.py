"""How the runner is made from the settings: host processes locally, per-attempt containers (one Docker
Engine or a swarm) in cloud mode, and what is made ahead of an attempt (warm containers or ready worktrees).

Docker and the swarm runner are imported only in cloud mode, so a local server never loads docker-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from anyon.config.model import AnyonConfig
from anyon.config.redact import url_secrets
from anyon.services.agents.agent_home import ensure_agent_home
from anyon.services.board.projects import ProjectService
from anyon.services.composition.agents import agent_home_for
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.runners.base import Runner
from anyon.services.runners.contracts import ContainerRunner
from anyon.services.runners.environment import agent_environment, without_server_secrets
from anyon.services.runners.host import HostRunner

if TYPE_CHECKING:
    from anyon.services.git.ready_worktrees import ReadyWorktrees
    from anyon.services.runners.agent_home_sync import AgentHomeSync
    from anyon.services.runners.swarm import SwarmRunner
    from anyon.services.runners.warm import WarmPool


def instance_id(config: AnyonConfig) -> str:
    """Names this server's containers (label ``anyon.instance``): derived from its data directory."""
    return hashlib.sha256(os.path.realpath(config.paths.data_dir).encode()).hexdigest()[:16]


def warm_pool_for(
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


def ready_worktrees_for(
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


def runner_for(
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
    runner_class: type[DockerRunner] | type[SwarmRunner] = DockerRunner
    if config.docker.runner == "swarm":  # one service per attempt, placed on a node by the manager
        from anyon.services.runners.swarm import SwarmRunner

        runner_class = SwarmRunner
    runner = runner_class(
        config.docker,
        instance_id(config),
        secrets_root,
        host_env=host_env,
        agent_home=agent_home,
        agent_home_of=home_of,
    )
    return runner, runner


def agent_home_refresh_for(runner: ContainerRunner | None) -> Callable[[str], Awaitable[None]] | None:
    """Cloud mode: what copies an agent home again, at once, into every running container that has it
    (a logout reaches them without waiting for their next process); None locally, where agents run with
    the agent home itself as HOME.

    The copies are made by each Engine's :class:`~anyon.services.runners.agent_home_sync.AgentHomeSync`:
    one VM's, or each swarm node's (the nodes this server run placed containers on).
    """
    if runner is None:
        return None
    from anyon.services.runners.docker import DockerRunner
    from anyon.services.runners.swarm import SwarmRunner

    def syncs() -> list[AgentHomeSync]:
        if isinstance(runner, SwarmRunner):
            return list({id(node): node.homes for node in runner.swarm.placed.values()}.values())
        return [runner.homes] if isinstance(runner, DockerRunner) else []

    async def refresh(home: str) -> None:
        await asyncio.gather(*(sync.refresh(home) for sync in syncs()))

    return refresh
