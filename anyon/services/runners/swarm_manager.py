"""The Swarm manager as the Swarm runner asks it: services, tasks and nodes, and each node's Engine.

Everything here reads or removes what the manager knows; placing a new service is the runner's
(:mod:`anyon.services.runners.swarm`), comparing what runs with what should is the reconcile's
(:mod:`anyon.services.runners.swarm_reconcile`). Both share this one view, with the attempt → node
Engine map (``placed``) and one lock per attempt, so neither imports the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anyon.config.model import DockerSettings
from anyon.services.runners.base import RunnerError
from anyon.services.runners.container_spec import instance_filters
from anyon.services.runners.engine_client import EngineClient
from anyon.services.runners.swarm_node import NodeEngine
from anyon.services.runners.swarm_tls import TLSSource

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Placement:
    service_id: str
    node_id: str
    container_id: str


class SwarmManager:
    """The manager's Engine API, the Engines of the nodes met so far, and where each attempt runs."""

    def __init__(
        self,
        settings: DockerSettings,
        instance_id: str,
        secrets_root: str | Path,
        engine: EngineClient,
        host_env: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self.engine = engine
        self._secrets_root = secrets_root
        self._host_env = host_env
        self._nodes: dict[str, NodeEngine] = {}
        #: the client certificate of every node engine, followed through rotations (swarm_tls.py)
        self._tls = TLSSource(settings.swarm_tls_dir) if settings.swarm_tls_dir else None
        #: attempt id → the Engine of the node its container runs on
        self.placed: dict[str, NodeEngine] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    @property
    def api(self) -> Any:
        return self.engine.api

    async def close(self) -> None:
        for node in list(self._nodes.values()):
            await node.close()
        self._nodes.clear()
        if self._tls is not None:
            self._tls.close()

    def lock(self, attempt_id: str) -> asyncio.Lock:
        return self.locks.setdefault(attempt_id, asyncio.Lock())

    async def services(self, attempt_id: str | None = None) -> list[dict[str, Any]]:
        """This instance's services, or the attempt's."""
        labels = instance_filters(self.instance_id, attempt_id)
        found: list[dict[str, Any]] = await self.engine.call(
            lambda: self.engine.api.services(filters={"label": labels})
        )
        return found

    async def tasks(self, service_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.engine.call(
            lambda: self.engine.api.tasks(filters={"service": service_id})
        )
        return found

    async def nodes(self) -> list[dict[str, Any]]:
        """The swarm's nodes as the manager lists them."""
        found: list[dict[str, Any]] = await self.engine.call(lambda: self.engine.api.nodes())
        return found

    async def node_state(self, node_id: str) -> str:
        """The node's state as the manager sees it (``ready``, ``down``, ``unknown``...)."""
        import docker

        try:
            node = await self.engine.call(lambda: self.engine.api.inspect_node(node_id))
        except docker.errors.NotFound:
            return "gone"
        return str(node.get("Status", {}).get("State") or "unknown")

    async def task_desired_state(self, attempt_id: str, container_id: str) -> str:
        """What Swarm wants of the task running ``container_id``: ``running``, ``shutdown``, ``gone``...

        Asked about that very task: on a drain Swarm may already have made a replacement task that
        wants to run (somewhere else, or pending). A manager that does not answer says nothing: ``running``.
        """
        try:
            services = await self.services(attempt_id)
            tasks = [t for s in services for t in await self.tasks(s["ID"])]
        except RunnerError:
            return "running"
        for task in tasks:
            if task.get("Status", {}).get("ContainerStatus", {}).get("ContainerID") == container_id:
                return str(task.get("DesiredState") or "unknown")
        return "gone"

    async def node_engine(self, node_id: str) -> NodeEngine:
        """The Engine of ``node_id``, from its ``docker.swarm_engine_label`` label."""
        import docker

        try:
            node = await self.engine.call(lambda: self.engine.api.inspect_node(node_id))
        except docker.errors.NotFound as exc:
            raise RunnerError(f"swarm node {node_id[:12]} no longer exists") from exc
        name = str(node.get("Description", {}).get("Hostname") or node_id[:12])
        address = (node.get("Spec", {}).get("Labels") or {}).get(self.settings.swarm_engine_label, "")
        if not address:
            raise RunnerError(
                f"swarm node {name} ({node_id[:12]}) has no {self.settings.swarm_engine_label!r} label "
                "naming its Docker Engine; add it with `docker node update --label-add "
                f"{self.settings.swarm_engine_label}=tcp://<node address>:2376 {node_id[:12]}` "
                '(deploy/RUNBOOK.md, "Add a worker node")'
            )
        engine = self._nodes.get(node_id)
        if engine is not None and engine.settings.host == address:
            return engine
        if engine is not None:
            await engine.close()
        engine = NodeEngine(
            dataclasses.replace(self.settings, host=address),
            self.instance_id,
            self._secrets_root,
            node_id=node_id,
            node_name=name,
            host_env=self._host_env,
            tls=self._tls,
        )
        self._nodes[node_id] = engine
        return engine

    async def placement(self, service: dict[str, Any]) -> Placement | None:
        """The service's running task (node and container), or ``None`` when none runs."""
        for task in await self.tasks(service["ID"]):
            status = task.get("Status", {})
            container = status.get("ContainerStatus", {}).get("ContainerID")
            if status.get("State") == "running" and task.get("DesiredState") == "running" and container:
                return Placement(service["ID"], str(task["NodeID"]), str(container))
        return None

    async def engine_for(self, attempt_id: str) -> NodeEngine | None:
        engine = self.placed.get(attempt_id)
        if engine is not None:
            return engine
        for service in await self.services(attempt_id):
            placement = await self.placement(service)
            if placement is not None:
                engine = await self.node_engine(placement.node_id)
                self.placed[attempt_id] = engine
                return engine
        return None

    async def reachable(self, node_id: str) -> NodeEngine | None:
        """The node's engine if the manager sees the node ready and its engine answers.

        A node the manager reports down is not even asked: over TCP a vanished machine would hold the
        call until the client's timeout.
        """
        try:
            if await self.node_state(node_id) != "ready":
                return None
            engine = await self.node_engine(node_id)
            await engine.ping()
        except RunnerError:
            return None
        return engine

    async def remove_service(self, attempt_id: str, service_id: str) -> None:
        """Remove the service and, where its node answers, its task container at once (not eventually)."""
        import docker

        containers: list[tuple[str, str]] = []
        with contextlib.suppress(RunnerError, docker.errors.APIError):
            for task in await self.tasks(service_id):
                cid = task.get("Status", {}).get("ContainerStatus", {}).get("ContainerID")
                if cid:
                    containers.append((str(task["NodeID"]), str(cid)))
        with contextlib.suppress(docker.errors.NotFound):
            await self.engine.call(lambda: self.engine.api.remove_service(service_id))
        engine = self.placed.pop(attempt_id, None)
        if engine is not None:
            await engine.forget(attempt_id)
        for node_id, cid in containers:
            reachable = await self.reachable(node_id)
            if reachable is None:
                continue  # the node's own swarm agent removes it when it is back; so does the reconcile
            await reachable.forget(attempt_id)
            with contextlib.suppress(Exception):
                await reachable.engine.remove_ids([cid])

    async def node_lost(self, attempt_id: str, engine: NodeEngine) -> None:
        """The attempt's node or container went away: remove its service so nothing restarts unseen."""
        log.warning("attempt %s lost its container on worker node %s", attempt_id, engine.node_label)
        async with self.lock(attempt_id):
            for service in await self.services(attempt_id):
                await self.remove_service(attempt_id, service["ID"])
        await engine.forget(attempt_id)
