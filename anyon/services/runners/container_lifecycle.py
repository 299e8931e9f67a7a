"""Creating, finding, adopting and removing the one container of each attempt.

A container is made from :class:`~anyon.services.runners.container_spec.ContainerSpec` and started with
the idle command; commands then run in it through execs (:mod:`anyon.services.runners.container_exec`).
One made by an earlier server run is *found* by its labels and adopted, marked for a sweep first (see
:mod:`anyon.services.runners.container_table`). Creation leaves nothing half-made behind: a failure
removes the container and the attempt's secrets directory again.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from anyon.services.runners.agent_home_sync import AgentHomeSync
from anyon.services.runners.base import RunnerError
from anyon.services.runners.cgroup_faults import CgroupFaults
from anyon.services.runners.container_spec import IDLE_COMMAND, ContainerSpec, mount_paths
from anyon.services.runners.container_table import ContainerTable, KnownContainer
from anyon.services.runners.engine_client import EngineClient
from anyon.services.runners.prestart import Prestarts
from anyon.services.runners.secrets_dir import SecretsDirs, check_attempt_id

log = logging.getLogger(__name__)


class AttemptContainers:
    """The attempts' containers on one Engine: ensure (create, restart or replace), find, remove."""

    def __init__(
        self,
        engine: EngineClient,
        spec: ContainerSpec,
        table: ContainerTable,
        secrets: SecretsDirs,
        homes: AgentHomeSync,
        faults: CgroupFaults,
        prestarts: Prestarts,
    ) -> None:
        self._engine = engine
        self._spec = spec
        self._table = table
        self._secrets = secrets
        self._homes = homes
        self._faults = faults
        self._prestarts = prestarts

    async def list(self, attempt_id: str | None = None) -> list[dict[str, Any]]:
        """This instance's containers (running or not), or the attempt's."""
        labels = self._spec.filters(attempt_id)
        result: list[dict[str, Any]] = await self._engine.call(
            lambda: self._engine.api.containers(all=True, filters={"label": labels})
        )
        return result

    async def ensure(self, attempt_id: str, worktree_path: str, objects_dir: str) -> str:
        """Return the id of the attempt's running container, creating or restarting it as needed.

        ``objects_dir`` is the project's object store, mounted read-only (the attempt borrows from it).
        """
        import docker

        worktree, git_dir = mount_paths(attempt_id, worktree_path, objects_dir)
        async with self._table.lock(attempt_id):
            existing = await self.find(attempt_id)
            state: dict[str, Any] | None = None
            if existing is not None:
                try:
                    state = await self._engine.call(lambda: self._engine.api.inspect_container(existing.id))
                except docker.errors.NotFound:
                    self._table.containers.pop(attempt_id, None)
                    existing = None
            home = await self._engine.in_thread(self._homes.home_of, attempt_id)
            if existing is not None and state is not None:
                if (existing.worktree, existing.git_dir) == (worktree, git_dir) and self._spec.mounts_match(
                    state, worktree, git_dir, home
                ):
                    if not state["State"]["Running"]:
                        await self._engine.call(lambda: self._engine.api.start(existing.id))
                    self._table.containers[attempt_id] = existing
                    self._prestarts.prestart(attempt_id)
                    return existing.id
                await self._prestarts.drop(attempt_id)
                await self._engine.remove_ids([existing.id])
                self._table.containers.pop(attempt_id, None)
            container_id = await self._create(attempt_id, worktree, git_dir, home)
            self._prestarts.prestart(attempt_id)
            return container_id

    async def find(self, attempt_id: str) -> KnownContainer | None:
        cached = self._table.containers.get(attempt_id)
        if cached is not None:
            return cached
        found = await self.list(attempt_id)
        if not found:
            return None
        info = found[0]
        mounts = {m.get("Destination"): m.get("Source") for m in info.get("Mounts", [])}
        worktree = info["Labels"].get("anyon.worktree", "")
        git_dir = info["Labels"].get("anyon.git-dir", "")
        if mounts.get(worktree) != worktree or mounts.get(git_dir) != git_dir:
            worktree = git_dir = ""
        container = KnownContainer(info["Id"], worktree, git_dir)
        running = info.get("State") == "running"
        counts = await self._faults.counts(info["Id"]) if running else None
        if counts is not None:
            container.oom_kills, container.pids_max = counts
        if running:  # made by an earlier server run: what runs in it is nobody's
            self._table.unswept.add(attempt_id)
        return container

    async def _create(self, attempt_id: str, worktree: str, git_dir: str, home: str | None) -> str:
        import docker

        secrets_dir = await self._engine.in_thread(self._secrets.ensure, attempt_id)
        await self._engine.in_thread(self._homes.share, home)
        labels = self._spec.mount_labels(attempt_id, worktree, git_dir)
        container_id: str | None = None
        try:
            host_config = self._engine.api.create_host_config(
                **self._spec.host_config_kwargs(worktree, git_dir, str(secrets_dir), home)
            )
            created = await self._engine.call(
                lambda: self._engine.api.create_container(
                    self._spec.settings.image,
                    command=IDLE_COMMAND,
                    user=f"{self._spec.uid}:{self._spec.gid}",
                    environment=self._spec.base_env(attempt_id, worktree),
                    working_dir=worktree,
                    labels=labels,
                    name=self._spec.container_name(attempt_id),
                    host_config=host_config,
                    detach=True,
                )
            )
            container_id = str(created["Id"])
            await self._engine.call(lambda: self._engine.api.start(container_id))
            await self._homes.copy(container_id, home)
        except docker.errors.ImageNotFound as exc:
            await self._undo_create(attempt_id, container_id)
            raise self._engine.image_missing() from exc
        except docker.errors.APIError as exc:
            await self._undo_create(attempt_id, container_id)
            raise RunnerError(
                f"could not create the container of attempt {attempt_id}: {exc.explanation}"
            ) from exc
        except BaseException:
            await self._undo_create(attempt_id, container_id)
            raise
        self._table.containers[attempt_id] = KnownContainer(container_id, worktree, git_dir)
        self._table.unswept.discard(attempt_id)
        log.info("started container %s for attempt %s", container_id[:12], attempt_id)
        return container_id

    async def _undo_create(self, attempt_id: str, container_id: str | None) -> None:
        """Leave nothing half-created behind: the container (if any) and the secrets directory."""
        with contextlib.suppress(Exception):
            ids = [container_id] if container_id else [c["Id"] for c in await self.list(attempt_id)]
            await self._engine.remove_ids(ids)
        await self._engine.in_thread(self._secrets.remove, attempt_id)

    async def remove(self, attempt_id: str) -> bool:
        """Tear down the attempt's container and its secrets directory (spec §8); idempotent."""
        check_attempt_id(attempt_id)
        await self._prestarts.drop(attempt_id)
        async with self._table.lock(attempt_id):
            await self._prestarts.drop(attempt_id)
            ids = [c["Id"] for c in await self.list(attempt_id)]
            await self._engine.remove_ids(ids)
            self._table.containers.pop(attempt_id, None)
            self._table.unswept.discard(attempt_id)
            removed_secrets = await self._engine.in_thread(self._secrets.remove, attempt_id)
        self._table.locks.pop(attempt_id, None)
        return bool(ids) or removed_secrets

    def track(self, attempt_id: str, container_id: str, worktree: str, git_dir: str) -> None:
        """Take over a container this server run just made through another API (a Swarm task).

        It is fresh, so nothing in it needs a sweep, and its cgroup counters start at zero.
        """
        self._table.containers[attempt_id] = KnownContainer(container_id, worktree, git_dir)
        self._table.unswept.discard(attempt_id)

    async def forget(self, attempt_id: str) -> None:
        """Drop what this runner knows of the attempt's container (it was removed elsewhere)."""
        await self._prestarts.drop(attempt_id)
        self._table.containers.pop(attempt_id, None)
        self._table.unswept.discard(attempt_id)
