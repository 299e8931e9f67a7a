"""Running commands in an attempt's container: agents' processes and the server's own captured runs.

A command starts in a pre-started launcher when one waits (:mod:`anyon.services.runners.prestart`),
else in a fresh exec under :data:`~anyon.services.runners.docker_process.LAUNCHER`. Before it starts, a
container that may still run unsupervised processes is swept, and the container's copy of the agent
home is brought up to date (a login or logout made since it started reaches it). ``run_captured`` is for the
server's git work on the attempt's repository, which runs where the agent runs (THREAT-MODEL rule 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from anyon.config.model import DockerSettings
from anyon.services.runners.agent_home_sync import AgentHomeSync
from anyon.services.runners.base import RunnerError
from anyon.services.runners.cgroup_faults import CgroupFaults
from anyon.services.runners.container_lifecycle import AttemptContainers
from anyon.services.runners.container_sweep import ContainerSweeper
from anyon.services.runners.container_table import ContainerTable
from anyon.services.runners.docker_process import LAUNCHER, DockerProcess
from anyon.services.runners.engine_client import EngineClient
from anyon.services.runners.engine_stream import STDERR, read_frame
from anyon.services.runners.prestart import Prestarts, command_line
from anyon.services.runners.secrets_dir import SecretsDirs, check_attempt_id

log = logging.getLogger(__name__)


class ContainerExecs:
    """Starts processes in the attempts' containers; the
    :class:`~anyon.services.runners.docker_process.ProcessHost` of those processes."""

    def __init__(
        self,
        settings: DockerSettings,
        engine: EngineClient,
        table: ContainerTable,
        containers: AttemptContainers,
        sweeper: ContainerSweeper,
        secrets: SecretsDirs,
        homes: AgentHomeSync,
        prestarts: Prestarts,
        faults: CgroupFaults,
        exec_prefix: tuple[str, ...] = (),
    ) -> None:
        self._settings = settings
        self.engine = engine
        self._table = table
        self._containers = containers
        self._sweeper = sweeper
        self._secrets = secrets
        self._homes = homes
        self._prestarts = prestarts
        self.faults = faults
        #: argv put before every command an agent can influence (the Swarm runner's ``setpriv`` wrapper)
        self._exec_prefix = exec_prefix

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
        """Start ``argv`` in the attempt's container (see :meth:`Runner.spawn`)."""
        if not argv:
            raise RunnerError("nothing to run: the command is empty")
        if attempt_id is None:
            raise RunnerError("the Docker runner needs the attempt id to find the attempt's container")
        container = await self._containers.find(check_attempt_id(attempt_id))
        if container is None:
            raise RunnerError(f"attempt {attempt_id} has no container; it must be provisioned first")
        self._table.containers[attempt_id] = container
        if attempt_id in self._table.unswept:  # nothing left over runs beside the new command
            await self._sweeper.kill_strays(attempt_id)
            container = await self._containers.find(attempt_id)
            if container is None:
                raise RunnerError(f"the container of attempt {attempt_id} no longer exists")
        # a login or logout since the container started reaches it (the home of the attempt's account)
        await self._homes.copy(container.id, await self.engine.in_thread(self._homes.home_of, attempt_id))
        exec_env = {**await self.engine.in_thread(self._secrets.env, attempt_id), **env}
        line = command_line(argv, cwd, exec_env) if self._settings.prestart_exec else None
        if line is not None:
            while (pre := await self._prestarts.take(attempt_id, container.id)) is not None:
                proc = DockerProcess(self, pre.exec_id, container.id, pre.reader, pre.writer, attempt_id)
                if await proc.start_prestarted(pre, argv[0], cwd, line, stdin, interactive):
                    self._prestarts.refill_after(attempt_id, proc.output_seen)
                    return proc
                log.info("the pre-started exec of attempt %s was gone; starting another", attempt_id)
        exec_id = await self._exec_create(
            attempt_id,
            container.id,
            [*self._exec_prefix, "/bin/sh", "-c", LAUNCHER, "anyon-exec", *argv],
            argv[0],
            stdin=stdin is not None or interactive,
            environment=exec_env,
            workdir=cwd,
        )
        reader, writer = await self.engine.start_exec(exec_id)
        proc = DockerProcess(self, exec_id, container.id, reader, writer, attempt_id)
        await proc.start(argv[0], stdin, interactive)
        self._prestarts.refill_after(attempt_id, proc.output_seen)
        return proc

    async def _exec_create(
        self, attempt_id: str, container_id: str, argv: list[str], name: str, **kwargs: Any
    ) -> str:
        """Create an exec in the attempt's container; a vanished container or an API refusal is clear."""
        import docker

        try:
            created = await self.engine.call(
                lambda: self.engine.api.exec_create(container_id, argv, **kwargs)
            )
        except docker.errors.NotFound as exc:
            self._table.containers.pop(attempt_id, None)
            raise RunnerError(f"the container of attempt {attempt_id} no longer exists") from exc
        except docker.errors.APIError as exc:
            raise RunnerError(f"could not start {name!r} in attempt {attempt_id}: {exc.explanation}") from exc
        return str(created["Id"])

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
        """Run a command in the attempt's container to completion: (exit code, stdout, stderr).

        For the server's own git work on the attempt's repository, which runs where the agent runs
        (THREAT-MODEL rule 2). Output beyond ``limit`` bytes fails the call rather than filling memory.
        """

        container = await self._containers.find(check_attempt_id(attempt_id))
        if container is None:
            raise RunnerError(f"attempt {attempt_id} has no container; it must be provisioned first")
        exec_id = await self._exec_create(
            attempt_id, container.id, [*self._exec_prefix, *argv], argv[0], environment=env or {}, workdir=cwd
        )
        reader, writer = await self.engine.start_exec(exec_id)
        out, err = bytearray(), bytearray()

        async def drain() -> None:
            while (frame := await read_frame(reader)) is not None:
                target = err if frame[0] == STDERR else out
                target += frame[1]
                if len(out) + len(err) > limit:
                    raise RunnerError(f"{argv[0]!r} in attempt {attempt_id} printed more than {limit} bytes")

        try:
            await asyncio.wait_for(drain(), timeout)
        except TimeoutError as exc:
            raise RunnerError(f"{argv[0]!r} in attempt {attempt_id} timed out after {timeout:.0f}s") from exc
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
        info = await self.engine.call(self.engine.api.exec_inspect, exec_id)
        code = info.get("ExitCode")
        return (code if isinstance(code, int) else -1), bytes(out), bytes(err)

    def lost(self, attempt_id: str) -> None:
        """A process of the attempt was lost track of: its container is swept before it is used again."""
        if attempt_id:
            self._table.unswept.add(attempt_id)
