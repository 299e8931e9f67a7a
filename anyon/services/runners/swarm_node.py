"""The node side of the Swarm runner: one node's Engine, and a process whose end is checked against it.

See :mod:`anyon.services.runners.swarm` and ``docs/scale-out.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from anyon.config.model import DockerSettings
from anyon.services.runners.base import RunnerError, RunnerUnavailable, RunningProcess
from anyon.services.runners.docker import DockerProcess, DockerRunner, DockerUnavailable

#: Sets no_new_privs on the launcher and so on everything it starts (Swarm services cannot set it).
NO_NEW_PRIVS = ("setpriv", "--no-new-privs")


class NodeLossHandler(Protocol):
    """What a process tells when its node went away (the Swarm runner removes the attempt's service)."""

    async def node_lost(self, attempt_id: str, engine: NodeEngine) -> None: ...


class NodeEngine(DockerRunner):
    """The Engine of one swarm node: the exec side of the single-VM runner, for Swarm-placed containers.

    Only the process side of :class:`DockerRunner` is used (spawn, prestart, stop, sweep, captured runs);
    containers are created and removed through the manager, never here.
    """

    exec_prefix = NO_NEW_PRIVS

    def __init__(
        self,
        settings: DockerSettings,
        instance_id: str,
        secrets_root: str | Path,
        *,
        node_id: str,
        node_name: str,
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(settings, instance_id, secrets_root, host_env=host_env)
        self.node_id = node_id
        self.node_name = node_name

    @property
    def node_label(self) -> str:
        return f"{self.node_name} ({self.node_id[:12]})"

    def _unavailable(self, exc: BaseException) -> DockerUnavailable:
        return DockerUnavailable(
            f"the worker node {self.node_label} running this attempt went away: its Docker Engine at "
            f"{self.settings.host} does not answer ({exc})"
        )

    async def container_state(self, attempt_id: str) -> str:
        """``running``, or what else the attempt's container is on that node (``gone``, ``exited``...)."""
        import docker

        known = self._containers.get(attempt_id)
        try:
            if known is None:
                listed = await self._list(attempt_id)
                return str(listed[0].get("State")) if listed else "gone"
            info = await self._call(lambda: self.api.inspect_container(known.id))
        except docker.errors.NotFound:
            return "gone"
        except RunnerUnavailable:
            return "unreachable"
        return str(info.get("State", {}).get("Status") or "unknown")


class SwarmProcess(RunningProcess):
    """A process on a node; its end is checked against the node, so a dead node is named as such."""

    def __init__(
        self, runner: NodeLossHandler, inner: DockerProcess, node: NodeEngine, attempt_id: str
    ) -> None:
        self._runner = runner
        self._inner = inner
        self._node = node
        self.attempt_id = attempt_id
        self.pid = inner.pid
        self.id = inner.id
        self.node_id = node.node_id
        self.stdout = inner.stdout
        self.stderr = inner.stderr
        self._lost: str | None = None

    async def wait(self) -> int:
        if self._lost is not None:
            raise RunnerError(self._lost)
        try:
            code = await self._inner.wait()
        except RunnerUnavailable as exc:
            raise await self._node_lost(str(exc)) from exc
        if not self._inner.stop_requested:
            state = await self._node.container_state(self.attempt_id)
            if state != "running":
                raise await self._node_lost(
                    f"the container of this attempt on worker node {self._node.node_label} is {state} "
                    "(its node's Docker Engine stopped, or the node left the swarm)"
                )
        self.returncode = code
        self.oom_killed = self._inner.oom_killed
        self.child_oom_killed = self._inner.child_oom_killed
        self.pids_limit_hit = self._inner.pids_limit_hit
        return code

    async def _node_lost(self, why: str) -> RunnerError:
        self._lost = (
            f"{why}; the process was lost. The attempt's container was removed: "
            "the next command runs on a node that is up."
        )
        await self._runner.node_lost(self.attempt_id, self._node)
        return RunnerError(self._lost)

    async def stop(self, escalation_seconds: float = 2.0) -> int:
        self.stop_requested = True
        try:
            await self._inner.stop(escalation_seconds)
        except RunnerUnavailable as exc:
            raise await self._node_lost(str(exc)) from exc
        return await self.wait()
