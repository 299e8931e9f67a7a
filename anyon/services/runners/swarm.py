"""Cloud mode across machines: Docker Swarm places one service per attempt; its node's Engine runs commands.

Design in ``docs/scale-out.md``. In short:

* **Placement** — ``docker.host`` is a Swarm manager. An attempt's container is the single task of a
  service ``anyon-<instance>-<attempt>`` (restart condition ``none``), placed by the manager according to
  its CPU/memory reservations (``docker.cpus``/``docker.memory``: reservation = limit) and
  ``docker.swarm_constraints``. The service and its container carry the labels a single-VM container
  carries, so reconcile and adoption work the same way.
* **Execution** — Swarm has no exec, so every command runs through the Engine of the node the task landed
  on (the node label ``docker.swarm_engine_label`` holds its address; ``tcp://`` ones over TLS with the
  client certificate of ``docker.swarm_tls_dir``, re-read when its files change: ``swarm_tls.py``), with
  the single-VM runner's exec protocol unchanged: a :class:`NodeEngine` is a :class:`DockerRunner`
  pointed at that node.
* **Path identity** — the worktree, object store and secrets directory are bind-mounted by path, so they
  must be on a filesystem every node mounts at the same path (Filestore/NFS in production).
* **Hardening** — as on one VM, except what the service API cannot say: ``no-new-privileges`` is set by
  running every command through ``setpriv --no-new-privs``, and ``network = "none"`` (no such Swarm
  network) means a service attached to no network on a node whose dockerd has no bridge — checked on each
  placement, never assumed.
* **A node that dies** — a process whose node stops answering, or whose container stopped under it, ends
  with an error naming the node; the attempt's service is removed at once so Swarm never restarts an
  empty container for it elsewhere unseen. The next command places a new one.

:class:`SwarmRunner` places services and hands commands to the node Engines. What the manager knows
(services, tasks, nodes, where each attempt runs) is :mod:`anyon.services.runners.swarm_manager`, shared
with the reconcile (:mod:`anyon.services.runners.swarm_reconcile`); the container's names, labels,
environment and agent home are the single-VM runner's own (``container_spec.py``, ``agent_home_sync.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from anyon.config.model import DockerSettings
from anyon.services.runners import swarm_reconcile
from anyon.services.runners.agent_home_sync import AgentHomeSync
from anyon.services.runners.base import RunnerError, RunnerUnavailable
from anyon.services.runners.container_spec import ContainerSpec, mount_paths
from anyon.services.runners.contracts import ReconcileResult
from anyon.services.runners.engine_client import EngineClient
from anyon.services.runners.secrets_dir import SecretsDirs, check_attempt_id
from anyon.services.runners.swarm_manager import Placement, SwarmManager
from anyon.services.runners.swarm_node import NodeEngine, SwarmProcess
from anyon.services.runners.swarm_spec import ENDED_STATES, task_template
from anyon.services.runners.swarm_warm import WarmQuota

log = logging.getLogger(__name__)


_POLL_SECONDS = 0.05


class SwarmRunner:
    """Runs attempts' containers as Swarm services and their commands through the nodes' Engines."""

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
    ) -> None:
        self.settings = settings
        self.instance_id = instance_id
        # the manager's API client and thread pool; the same names, labels and hardening as one VM's
        self.engine = EngineClient(settings, client=client)
        self.spec = ContainerSpec(settings, instance_id, host_env)
        self.uid, self.gid = self.spec.uid, self.spec.gid
        self.secrets = SecretsDirs(secrets_root, self.uid, self.gid)
        self.homes = AgentHomeSync(self.engine, self.uid, self.gid, agent_home, agent_home_of)
        self.swarm = SwarmManager(settings, instance_id, secrets_root, self.engine, dict(host_env or {}))
        #: attempt ids of warm containers waiting for their attempt (warm.py); never reconciled away
        self.reserved_ids: set[str] = set()
        self.warm_quota = WarmQuota(settings.warm_pool_per_node, self.swarm, self.reserved_ids)

    # --- the manager --------------------------------------------------------------------------

    @property
    def api(self) -> Any:
        return self.engine.api

    async def ping(self) -> None:
        await self.engine.ping()

    async def check_image(self) -> None:
        await self.engine.check_image()

    async def close(self) -> None:
        await self.swarm.close()
        await self.engine.close()

    def labels(self, attempt_id: str) -> dict[str, str]:
        return self.spec.labels(attempt_id)

    def service_name(self, attempt_id: str) -> str:
        return self.spec.container_name(attempt_id)

    # --- placement ----------------------------------------------------------------------------

    async def ensure_container(self, attempt_id: str, worktree_path: str, objects_dir: str) -> str:
        """Return the id of the attempt's running container, placing a service for it as needed."""
        worktree, git_dir = mount_paths(attempt_id, worktree_path, objects_dir)
        async with self.swarm.lock(attempt_id):
            engine = self.swarm.placed.get(attempt_id)
            known = engine.tracked(attempt_id) if engine is not None else None
            # placed by this server run: one look at the container on its node is enough
            if (
                engine is not None
                and known is not None
                and known[1:] == (worktree, git_dir)
                and await engine.container_state(attempt_id) == "running"
            ):
                engine.prestart(attempt_id)
                return known[0]
            for service in await self.swarm.services(attempt_id):
                labels = service.get("Spec", {}).get("Labels", {})
                placement = await self.swarm.placement(service)
                same = (labels.get("anyon.worktree"), labels.get("anyon.git-dir")) == (worktree, git_dir)
                if placement is not None and same:
                    engine = await self.swarm.reachable(placement.node_id)
                    if engine is not None and await engine.container_state(attempt_id) == "running":
                        self.swarm.placed[attempt_id] = engine
                        engine.prestart(attempt_id)
                        return placement.container_id
                await self.swarm.remove_service(attempt_id, service["ID"])
            if self.warm_quota.applies(attempt_id):  # a warm container: not onto a node at its quota
                async with self.warm_quota.lock:
                    avoid = await self.warm_quota.constraints()
                    return await self._create(attempt_id, worktree, git_dir, avoid)
            return await self._create(attempt_id, worktree, git_dir)

    async def _create(
        self, attempt_id: str, worktree: str, git_dir: str, avoid: list[str] | None = None
    ) -> str:
        import docker

        secrets_dir = await self.engine.in_thread(self.secrets.ensure, attempt_id)
        labels = self.spec.mount_labels(attempt_id, worktree, git_dir)
        env = self.spec.base_env(attempt_id, worktree)
        user = f"{self.uid}:{self.gid}"
        home = await self.engine.in_thread(self.homes.home_of, attempt_id)  # the account's logins
        await self.engine.in_thread(self.homes.share, home)
        agent_home = self.spec.agent_home_mounts(home)
        template = task_template(
            self.settings,
            user,
            env,
            labels,
            worktree,
            git_dir,
            str(secrets_dir),
            extra_mounts=agent_home,
            extra_constraints=avoid,
        )
        service_id: str | None = None
        try:
            created = await self.engine.call(
                lambda: self.engine.api.create_service(
                    template, name=self.service_name(attempt_id), labels=labels
                )
            )
            service_id = str(created["ID"])
            placement = await self._wait_running(attempt_id, service_id)
            engine = await self.swarm.node_engine(placement.node_id)
            await self._check_isolated(engine, placement.container_id)
        except docker.errors.APIError as exc:
            await self._undo_create(attempt_id, service_id)
            raise RunnerError(
                f"could not place the container of attempt {attempt_id}: {exc.explanation}"
            ) from exc
        except BaseException:
            await self._undo_create(attempt_id, service_id)
            raise
        engine.track(attempt_id, placement.container_id, worktree, git_dir)
        self.swarm.placed[attempt_id] = engine
        if agent_home:  # the container's HOME starts as a copy of the agent home, so agents are signed in
            await engine.homes.copy(placement.container_id, home)
        engine.prestart(attempt_id)
        log.info(
            "placed attempt %s on node %s (container %s)",
            attempt_id,
            engine.node_label,
            placement.container_id[:12],
        )
        return placement.container_id

    async def _wait_running(self, attempt_id: str, service_id: str) -> Placement:
        """Poll the service's task until it runs; a refusal or the timeout fails with Swarm's reason."""
        deadline = time.monotonic() + self.settings.swarm_task_timeout_seconds
        last = "no task yet"
        while True:
            for task in await self.swarm.tasks(service_id):
                status = task.get("Status", {})
                state = status.get("State", "")
                container = status.get("ContainerStatus", {}).get("ContainerID")
                if state == "running" and container:
                    return Placement(service_id, str(task["NodeID"]), str(container))
                reason = status.get("Err") or status.get("Message") or state
                last = f"{state}: {reason}"
                if state in ENDED_STATES:
                    raise RunnerError(
                        f"the swarm could not start the container of attempt {attempt_id} ({last})"
                    )
            if time.monotonic() >= deadline:
                raise RunnerError(
                    f"the swarm placed no running container for attempt {attempt_id} within "
                    f"{self.settings.swarm_task_timeout_seconds:g} s (docker.swarm_task_timeout_seconds); "
                    f"last task state {last}. No node may fit its reservations (docker.cpus, docker.memory) "
                    "and constraints (docker.swarm_constraints), or the image is missing on the nodes."
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def _check_isolated(self, engine: NodeEngine, container_id: str) -> None:
        """With ``docker.network = "none"`` the task must have no address at all on its node."""
        if self.settings.network != "none":
            return
        info = await engine.engine.call(lambda: engine.api.inspect_container(container_id))
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        addressed = sorted(
            name
            for name, net in networks.items()
            if (net or {}).get("IPAddress") or (net or {}).get("GlobalIPv6Address")
        )
        if addressed:
            raise RunnerError(
                f"the container placed on worker node {engine.node_label} has an address on {addressed} but "
                'docker.network is "none": run that node\'s dockerd with --bridge=none (docs/scale-out.md)'
            )

    async def _undo_create(self, attempt_id: str, service_id: str | None) -> None:
        with contextlib.suppress(Exception):
            ids = [service_id] if service_id else [s["ID"] for s in await self.swarm.services(attempt_id)]
            for sid in ids:
                await self.swarm.remove_service(attempt_id, sid)
        with contextlib.suppress(Exception):
            await self.engine.in_thread(self.secrets.remove, attempt_id)

    async def remove_container(self, attempt_id: str) -> bool:
        """Tear down the attempt's service, its container and its secrets directory; idempotent."""
        check_attempt_id(attempt_id)
        async with self.swarm.lock(attempt_id):
            services = await self.swarm.services(attempt_id)
            for service in services:
                await self.swarm.remove_service(attempt_id, service["ID"])
            engine = self.swarm.placed.pop(attempt_id, None)
            if engine is not None:
                await engine.forget(attempt_id)
            removed_secrets = await self.engine.in_thread(self.secrets.remove, attempt_id)
        self.swarm.locks.pop(attempt_id, None)
        return bool(services) or removed_secrets

    # --- reconcile (swarm_reconcile.py) -------------------------------------------------------

    async def reconcile(
        self, live_attempt_ids: set[str] | Callable[[], Awaitable[set[str]]]
    ) -> ReconcileResult:
        """Adopt (and sweep) live attempts' services, remove every other one of this instance and every
        node container no service owns (see :func:`swarm_reconcile.reconcile`)."""
        return await swarm_reconcile.reconcile(self.swarm, self.secrets, live_attempt_ids, self.reserved_ids)

    def node_report(self) -> list[tuple[str, str, int]]:
        """(node, "state/availability", running attempt tasks) per node; blocking (metrics thread)."""
        return swarm_reconcile.node_report(self.swarm)

    # --- processes (through the node's Engine) ------------------------------------------------

    def lost(self, attempt_id: str) -> None:
        engine = self.swarm.placed.get(attempt_id)
        if engine is not None:
            engine.lost(attempt_id)

    def unswept(self, attempt_id: str) -> bool:
        engine = self.swarm.placed.get(attempt_id)
        return engine is not None and engine.unswept(attempt_id)

    async def kill_strays(self, attempt_id: str) -> int:
        engine = await self.swarm.engine_for(check_attempt_id(attempt_id))
        return 0 if engine is None else await engine.kill_strays(attempt_id)

    def write_secrets(
        self, attempt_id: str, github_token: str | None, claude_credentials: str | None
    ) -> Path:
        return self.secrets.write(attempt_id, github_token, claude_credentials)

    def prestart(self, attempt_id: str) -> None:
        engine = self.swarm.placed.get(attempt_id)
        if engine is not None:
            engine.prestart(attempt_id)

    async def _engine_or_fail(self, attempt_id: str | None) -> NodeEngine:
        if attempt_id is None:
            raise RunnerError("the Swarm runner needs the attempt id to find the attempt's container")
        engine = await self.swarm.engine_for(check_attempt_id(attempt_id))
        if engine is None:
            raise RunnerError(f"attempt {attempt_id} has no container; it must be provisioned first")
        return engine

    async def spawn(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        stdin: bytes | None = None,
        *,
        attempt_id: str | None = None,
        interactive: bool = False,
    ) -> SwarmProcess:
        engine = await self._engine_or_fail(attempt_id)
        assert attempt_id is not None
        try:
            inner = await engine.spawn(argv, cwd, env, stdin, attempt_id=attempt_id, interactive=interactive)
        except RunnerUnavailable as exc:
            await self.swarm.node_lost(attempt_id, engine)
            raise RunnerError(
                f"{exc}; the attempt's container was removed: the next command runs on a node that is up"
            ) from exc
        return SwarmProcess(self.swarm, inner, engine, attempt_id)

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
        """As :meth:`DockerRunner.run_captured`, on the attempt's node."""
        engine = await self._engine_or_fail(attempt_id)
        return await engine.run_captured(attempt_id, argv, cwd, env, timeout=timeout, limit=limit)
