"""How the agent pieces are made from the settings: the agent homes, the launcher, the environment of
host agents and the browser login terminal.

Where the agents keep their logins decides several pieces at once (the homes, the runner's mounts, the
login terminal, the MCP config files), so the choice of home (:func:`agent_home_for`) lives here once.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
from collections.abc import Awaitable, Callable

from anyon.config.model import AnyonConfig
from anyon.config.redact import url_secrets
from anyon.services.agents.agent_home import AgentHomes, ensure_agent_home
from anyon.services.agents.agent_login import AgentLoginService
from anyon.services.agents.launchers import AGENT_CLIS, AgentLauncher
from anyon.services.db.columns import parse_uuid
from anyon.services.db.database import Database
from anyon.services.db.models import TaskAttempt
from anyon.services.runners.environment import agent_environment


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


def login_service_for(
    config: AnyonConfig,
    homes: AgentHomes | None = None,
    on_logout: Callable[[str], Awaitable[object]] | None = None,
) -> AgentLoginService:
    """The login terminal: ``agents.claude_login_command``, else the Claude Code CLI (installed or npx).

    ``on_logout`` (cloud mode: :func:`~anyon.services.composition.runners.agent_home_refresh_for`) takes
    a removed login out of the running containers too."""
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
        per_account_limit=config.agents.login_terminals_per_account,
        resolve=resolve,
        own_home=bool(config.agents.home) or config.is_cloud,
        homes=homes,
        on_logout=on_logout,
    )
