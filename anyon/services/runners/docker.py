"""Cloud mode: one hardened container per attempt; commands run in it through Engine API execs.

Design notes (spec §4.4 and §8, ARCHITECTURE decisions 3, 4, 7). :class:`DockerRunner` is the runner the
rest of the server holds (:class:`~anyon.services.runners.contracts.ContainerRunner`); it composes one
collaborator per concern, each in its own module with its reasons:

* :mod:`~anyon.services.runners.engine_client` — the one Engine API client and its worker threads;
* :mod:`~anyon.services.runners.container_spec` — name, labels, environment, mounts and hardening;
* :mod:`~anyon.services.runners.container_table` — what this run knows of each container, what needs a
  sweep ("adopted containers start empty");
* :mod:`~anyon.services.runners.container_lifecycle` — create, find/adopt, remove;
* :mod:`~anyon.services.runners.container_sweep` — reconcile and the sweep of unsupervised processes;
* :mod:`~anyon.services.runners.container_exec` and :mod:`~anyon.services.runners.docker_process` —
  commands and their exec protocol; :mod:`~anyon.services.runners.prestart` — launchers started ahead;
* :mod:`~anyon.services.runners.agent_home_sync` — the agent home copied into each container;
* :mod:`~anyon.services.runners.cgroup_faults` — why a process died (memory, pids limit).

A swarm node's Engine is this runner with another Engine client (``swarm_node.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from anyon.config.model import DockerSettings
from anyon.services.runners.agent_home_sync import AgentHomeSync
from anyon.services.runners.cgroup_faults import CgroupFaults
from anyon.services.runners.container_exec import ContainerExecs
from anyon.services.runners.container_lifecycle import AttemptContainers
from anyon.services.runners.container_spec import ContainerSpec
from anyon.services.runners.container_sweep import ContainerSweeper
from anyon.services.runners.container_table import ContainerTable
from anyon.services.runners.contracts import ReconcileResult
from anyon.services.runners.docker_process import DockerProcess
from anyon.services.runners.engine_client import EngineClient
from anyon.services.runners.prestart import Prestarts
from anyon.services.runners.secrets_dir import SecretsDirs


class DockerRunner:
    """Runs attempts' commands in per-attempt containers (cloud mode).

    ``instance_id`` names this server's data directory in the ``anyon.instance`` label, so two servers
    sharing a daemon never touch each other's containers. ``host_env`` is the server's environment,
    from which only ``docker.env_allowlist`` names reach containers. ``engine`` replaces the Engine
    client made from ``settings`` (and ``client``): a swarm node's, over TLS.
    """

    #: argv put before every command an agent can influence (the Swarm runner's ``setpriv`` wrapper)
    exec_prefix: tuple[str, ...] = ()

    def __init__(
        self,
        settings: DockerSettings,
        instance_id: str,
        secrets_root: str | Path,
        *,
        host_env: Mapping[str, str] | None = None,
        client: Any | None = None,
        agent_home: str | None = None,
        agent_home_of: Callable[[str], str | None] | None = None,
        engine: EngineClient | None = None,
    ) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self.spec = ContainerSpec(settings, instance_id, host_env)
        self.uid, self.gid = self.spec.uid, self.spec.gid
        self.secrets = SecretsDirs(secrets_root, self.uid, self.gid)
        self.engine = engine if engine is not None else EngineClient(settings, client=client)
        self.homes = AgentHomeSync(self.engine, self.uid, self.gid, agent_home, agent_home_of)
        self.table = ContainerTable()
        self.faults = CgroupFaults(self.engine, self.table)
        self.prestarts = Prestarts(settings, self.engine, self.table, self.exec_prefix)
        self.containers = AttemptContainers(
            self.engine, self.spec, self.table, self.secrets, self.homes, self.faults, self.prestarts
        )
        self.sweeper = ContainerSweeper(
            self.engine, self.containers, self.table, self.secrets, self.prestarts
        )
        self.execs = ContainerExecs(
            settings,
            self.engine,
            self.table,
            self.containers,
            self.sweeper,
            self.secrets,
            self.homes,
            self.prestarts,
            self.faults,
            self.exec_prefix,
        )
        #: attempt ids of warm containers waiting for their attempt (warm.py); never reconciled away
        self.reserved_ids: set[str] = set()

    # --- the Engine ---------------------------------------------------------------------------

    @property
    def api(self) -> Any:
        """The one docker-py ``APIClient``; created on first use so a stopped daemon never blocks start-up."""
        return self.engine.api

    async def ping(self) -> None:
        """Raise :class:`~.engine_client.DockerUnavailable` unless the daemon answers."""
        await self.engine.ping()

    async def check_image(self) -> None:
        """Raise :class:`~.engine_client.ImageMissing` unless the image is present."""
        await self.engine.check_image()

    async def close(self) -> None:
        """Close the Engine API client and the worker threads; containers keep running.

        Waiting launchers end with our side of their stream (their stdin closes).
        """
        await self.prestarts.close()
        await self.engine.close()

    # --- containers ---------------------------------------------------------------------------

    def container_name(self, attempt_id: str) -> str:
        return self.spec.container_name(attempt_id)

    def labels(self, attempt_id: str) -> dict[str, str]:
        return self.spec.labels(attempt_id)

    def home_of(self, attempt_id: str) -> str | None:
        """The agent home an attempt's container gets: its account's, else the deployment's (blocking)."""
        return self.homes.home_of(attempt_id)

    async def ensure_container(self, attempt_id: str, worktree_path: str, objects_dir: str) -> str:
        """Return the id of the attempt's running container, creating or restarting it as needed.

        ``objects_dir`` is the project's object store, mounted read-only (the attempt borrows from it).
        """
        return await self.containers.ensure(attempt_id, worktree_path, objects_dir)

    async def remove_container(self, attempt_id: str) -> bool:
        """Tear down the attempt's container and its secrets directory (spec §8); idempotent."""
        return await self.containers.remove(attempt_id)

    def track(self, attempt_id: str, container_id: str, worktree: str, git_dir: str) -> None:
        """Take over a container this server run just made through another API (a Swarm task)."""
        self.containers.track(attempt_id, container_id, worktree, git_dir)

    async def forget(self, attempt_id: str) -> None:
        """Drop what this runner knows of the attempt's container (it was removed elsewhere)."""
        await self.containers.forget(attempt_id)

    def write_secrets(
        self, attempt_id: str, github_token: str | None, claude_credentials: str | None
    ) -> Path:
        """(Re)write the attempt's secrets directory; the next command sees them (spec §4.4)."""
        return self.secrets.write(attempt_id, github_token, claude_credentials)

    # --- reconcile and sweep ------------------------------------------------------------------

    async def reconcile(
        self, live_attempt_ids: set[str] | Callable[[], Awaitable[set[str]]]
    ) -> ReconcileResult:
        """Adopt (and sweep) the containers of live attempts and warm slots; remove every other one."""
        return await self.sweeper.reconcile(live_attempt_ids, self.reserved_ids)

    def lost(self, attempt_id: str) -> None:
        """A process of the attempt was lost track of: its container is swept before it is used again."""
        self.execs.lost(attempt_id)

    def unswept(self, attempt_id: str) -> bool:
        """Whether the attempt's container may still run processes this server does not supervise."""
        return attempt_id in self.table.unswept

    async def kill_strays(self, attempt_id: str) -> int:
        """Kill every process in the attempt's container but its init and idle command."""
        return await self.sweeper.kill_strays(attempt_id)

    # --- processes ----------------------------------------------------------------------------

    async def spawn(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        stdin: bytes | None = None,
        *,
        attempt_id: str | None = None,
        interactive: bool = False,
    ) -> DockerProcess:
        return await self.execs.spawn(argv, cwd, env, stdin, attempt_id=attempt_id, interactive=interactive)

    def prestart(self, attempt_id: str) -> None:
        """Start a waiting launcher in the attempt's container in the background, unless one exists."""
        self.prestarts.prestart(attempt_id)

    async def run_captured(
        self,
        attempt_id: str,
        argv: list[str],
        cwd: str,
        env: dict[str, str] | None = None,
        *,
        timeout: float = 300.0,
        limit: int = 64 * 1024 * 1024,
    ) -> tuple[int, bytes, bytes]:
        """Run a command in the attempt's container to completion: (exit code, stdout, stderr)."""
        return await self.execs.run_captured(attempt_id, argv, cwd, env, timeout=timeout, limit=limit)
