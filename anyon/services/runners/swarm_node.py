"""The node side of the Swarm runner: one node's Engine, and a process whose end is checked against it.

See :mod:`anyon.services.runners.swarm` and ``docs/scale-out.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from anyon.config.model import DockerSettings
from anyon.services.runners.base import RunnerError, RunnerUnavailable, RunningProcess
from anyon.services.runners.docker import DockerRunner
from anyon.services.runners.docker_process import DockerProcess
from anyon.services.runners.engine_client import DockerUnavailable, EngineClient
from anyon.services.runners.swarm_tls import TLSMaterial, TLSSource

log = logging.getLogger(__name__)

#: Seconds between two looks at the state of a running process's node in the swarm.
NODE_POLL_SECONDS = 2.0
#: A process killed by a signal in a running container: looks at its container (and task) before the
#: exit is believed, since an engine shutting down kills processes a moment before the container stops.
SETTLE_LOOKS = 10
SETTLE_SECONDS = 0.2
#: Sets no_new_privs on the launcher and so on everything it starts (Swarm services cannot set it).
NO_NEW_PRIVS = ("setpriv", "--no-new-privs")


def tls_client(address: str, files: tuple[str, str, str], timeout: float) -> Any:
    """A docker-py client of a node engine over TLS: our client certificate, the server checked by ca.pem.

    ``trust_env`` is off: requests would otherwise let ``REQUESTS_CA_BUNDLE`` (often set to the system
    bundle) replace the node's CA, and refuse the node. The API version is asked only after that.
    """
    import docker
    from docker.tls import TLSConfig

    ca, cert, key = files
    tls = TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=ca)
    client = docker.APIClient(
        base_url=address, version=docker.constants.MINIMUM_DOCKER_API_VERSION, timeout=timeout, tls=tls
    )
    client.trust_env = False
    try:
        client._version = client._retrieve_server_version()
    except BaseException:
        client.close()
        raise
    return client


class NodeLossHandler(Protocol):
    """What a process tells when its node went away (the swarm manager view removes the attempt's service)."""

    async def node_lost(self, attempt_id: str, engine: NodeEngine) -> None: ...

    async def node_state(self, node_id: str) -> str: ...

    async def task_desired_state(self, attempt_id: str, container_id: str) -> str: ...


class NodeClient(EngineClient):
    """The Engine API client of one swarm node: over TLS with ``docker.swarm_tls_dir``'s files when the
    node's address is ``tcp://``, and a connection failure that names the node.

    The files are looked at again before every connection is built or reused (:mod:`.swarm_tls`): once
    they changed and check out, the docker-py client is made anew and exec streams use the new context,
    so a rotated certificate needs no restart. Connections already open keep the set they started with.
    """

    def __init__(
        self, settings: DockerSettings, *, node_id: str, node_name: str, tls: TLSSource | None = None
    ) -> None:
        super().__init__(settings)
        self.node_id = node_id
        self.node_name = node_name
        scheme = urlsplit(settings.host).scheme
        self._source: TLSSource | None = None
        self._own_source = False
        self._material: TLSMaterial | None = None
        #: docker-py clients made with a replaced set: closed with this client (calls may still use them)
        self._retired: list[Any] = []
        if settings.swarm_tls_dir and scheme in ("tcp", "https"):
            if tls is None:
                tls, self._own_source = TLSSource(settings.swarm_tls_dir), True
            self._source = tls
            self._material = tls.current()
            self.tls = self._material.context

    @property
    def api(self) -> Any:
        self._refresh_tls()
        return super().api

    def _refresh_tls(self) -> None:
        """Follow a rotation of ``docker.swarm_tls_dir``: the next connections use the new set."""
        if self._source is None:
            return
        material = self._source.current()
        if material is self._material:
            return
        with self._client_lock:
            if material is self._material:
                return
            if self._client is not None:
                self._retired.append(self._client)
                self._client = None
            self._material = material
            self.tls = material.context

    def make_client(self) -> Any:
        if self._material is None:
            return super().make_client()
        return tls_client(self.settings.host, self._material.files, timeout=60)

    async def start_exec(self, exec_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._refresh_tls()
        return await super().start_exec(exec_id)

    async def close(self) -> None:
        retired, self._retired = self._retired, []
        for client in retired:
            with contextlib.suppress(Exception):
                await self.in_thread(client.close)
        await super().close()
        if self._own_source and self._source is not None:
            self._source.close()

    @property
    def node_label(self) -> str:
        return f"{self.node_name} ({self.node_id[:12]})"

    def unavailable(self, exc: BaseException) -> DockerUnavailable:
        return DockerUnavailable(
            f"the worker node {self.node_label} running this attempt went away: its Docker Engine at "
            f"{self.settings.host} does not answer ({exc})"
        )


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
        tls: TLSSource | None = None,
    ) -> None:
        self.node = NodeClient(settings, node_id=node_id, node_name=node_name, tls=tls)
        super().__init__(settings, instance_id, secrets_root, host_env=host_env, engine=self.node)
        self.node_id = node_id
        self.node_name = node_name

    @property
    def node_label(self) -> str:
        return self.node.node_label

    def tracked(self, attempt_id: str) -> tuple[str, str, str] | None:
        """(container id, worktree, object store) of the attempt's container as this runner knows it."""
        known = self.table.containers.get(attempt_id)
        return None if known is None else (known.id, known.worktree, known.git_dir)

    async def container_state(self, attempt_id: str) -> str:
        """``running``, or what else the attempt's container is on that node (``gone``, ``exited``...)."""
        import docker

        known = self.table.containers.get(attempt_id)
        try:
            if known is None:
                listed = await self.containers.list(attempt_id)
                return str(listed[0].get("State")) if listed else "gone"
            info = await self.engine.call(lambda: self.engine.api.inspect_container(known.id))
        except docker.errors.NotFound:
            return "gone"
        except RunnerUnavailable:
            return "unreachable"
        return str(info.get("State", {}).get("Status") or "unknown")


class SwarmProcess(RunningProcess):
    """A process on a node; its end is checked against the node, so a dead node is named as such.

    A node that vanishes without closing its connections (power loss, a partition) would leave the exec
    stream open forever: while the process runs, the node's state in the swarm is polled, and once the
    manager reports it ``down`` the process is given up on without waiting for the node.
    """

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
        self._down = asyncio.Event()
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch_node(), name=f"anyon-node-watch:{inner.id[:12]}"
        )

    async def _watch_node(self) -> None:
        while not self._inner._eof.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._inner._eof.wait(), NODE_POLL_SECONDS)
                return
            try:
                state = await self._runner.node_state(self.node_id)
            except RunnerError:
                continue  # the manager itself does not answer: nothing to conclude about the node
            if state == "down":
                self._down.set()
                self._inner._close()  # ends the output streams: nothing more comes from that node
                return

    async def wait(self) -> int:
        if self._lost is not None:
            raise RunnerError(self._lost)
        inner_wait = asyncio.ensure_future(self._inner.wait())
        down = asyncio.ensure_future(self._down.wait())
        try:
            await asyncio.wait({inner_wait, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
        if not inner_wait.done():
            inner_wait.cancel()
            raise await self._node_lost(f"the worker node {self._node.node_label} is down in the swarm")
        try:
            code: int = inner_wait.result()
        except RunnerUnavailable as exc:
            raise await self._node_lost(str(exc)) from exc
        finally:
            self._watcher.cancel()
        if not self._inner.stop_requested:
            state = await self._node.container_state(self.attempt_id)
            desired = "running"
            # killed by a signal while the container still runs: Swarm may be stopping it (a drain), or
            # the node's engine is shutting down and kills processes before the container's state changes
            looks = SETTLE_LOOKS if code > 128 else 0
            while state == "running" and looks > 0:
                desired = await self._runner.task_desired_state(self.attempt_id, self._inner.container_id)
                if desired != "running":
                    break
                looks -= 1
                await asyncio.sleep(SETTLE_SECONDS)
                state = await self._node.container_state(self.attempt_id)
            if state != "running":
                raise await self._node_lost(
                    f"the container of this attempt on worker node {self._node.node_label} is {state} "
                    "(its node's Docker Engine stopped, or the node left the swarm)"
                )
            if desired != "running":
                raise await self._node_lost(
                    f"the swarm is stopping the container of this attempt on worker node "
                    f"{self._node.node_label} (task desired state {desired!r}: the node is being drained "
                    "or left the swarm)"
                )
        self.returncode = code
        self.oom_killed = self._inner.oom_killed
        self.child_oom_killed = self._inner.child_oom_killed
        self.pids_limit_hit = self._inner.pids_limit_hit
        return code

    async def _node_lost(self, why: str) -> RunnerError:
        self._watcher.cancel()
        if self._lost is None:
            self._lost = (
                f"{why}; the process was lost. The attempt's container was removed: "
                "the next command runs on a node that is up."
            )
            try:
                await self._runner.node_lost(self.attempt_id, self._node)
            except RunnerError as exc:  # the reconcile removes the service once the manager answers
                log.warning("could not remove the service of attempt %s: %s", self.attempt_id, exc)
        return RunnerError(self._lost)

    async def write(self, data: bytes) -> None:
        await self._inner.write(data)  # an agent's protocol (interactive processes) goes to the node

    async def close_stdin(self) -> None:
        await self._inner.close_stdin()

    async def stop(self, escalation_seconds: float = 2.0) -> int:
        self.stop_requested = True
        if self._down.is_set():
            return await self.wait()
        try:
            await self._inner.stop(escalation_seconds)
        except RunnerUnavailable as exc:
            raise await self._node_lost(str(exc)) from exc
        return await self.wait()
