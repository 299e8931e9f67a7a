"""A command running in an attempt's container, read from its Engine API exec stream.

**Exec protocol** — every command runs under a one-line launcher that prints its pid (the exec is a
session leader, so that pid is also the process group of everything it starts) before ``exec``-ing the
command. ``stop()`` signals that group *inside* the container, so agents and their children stop rather
than only the client side. A pre-started launcher waiting for a command line
(:mod:`anyon.services.runners.prestart`) ends the same way: :class:`DockerProcess` is built from an
already-open exec stream either way. Its end asks the container cgroup why it died
(:mod:`anyon.services.runners.cgroup_faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Protocol

from anyon.services.runners.base import (
    SIGKILL_EXIT,
    ChunkStream,
    ExecutableNotFound,
    RunnerError,
    RunnerUnavailable,
    RunningProcess,
    StdinClosed,
)
from anyon.services.runners.cgroup_faults import CgroupFaults
from anyon.services.runners.engine_client import EngineClient
from anyon.services.runners.engine_stream import STDERR, read_frame
from anyon.services.runners.prestart import CWD_DENIED, NO_CWD, NOT_FOUND, STARTED, PrestartedExec

log = logging.getLogger(__name__)

#: First stdout line: the pid (= process group) or ``!notfound``; then the command replaces the shell.
LAUNCHER = (
    'command -v "$1" >/dev/null 2>&1 || { printf "!notfound\\n"; exit 127; }; printf "%s\\n" "$$"; exec "$@"'
)
#: Escalation inside the container: INT, TERM, KILL to the group, each while any member is alive.
#: ``kill -s SIG -- -PGID`` is what dash needs; busybox ash rejects ``--`` and wants ``kill -s SIG -PGID``.
STOP_SCRIPT = """g=$1; ticks=$2
sig() { kill -s "$1" -- "-$g" 2>/dev/null || kill -s "$1" "-$g" 2>/dev/null; }
alive() { sig 0; }
for s in INT TERM KILL; do
  alive || exit 0
  sig "$s"
  n=0
  while alive && [ "$n" -lt "$ticks" ]; do sleep 0.05 2>/dev/null || sleep 1; n=$((n+1)); done
done
alive && exit 1
exit 0"""
_STOP_TICK_SECONDS = 0.05
_HANDSHAKE_LIMIT = 4096


class ProcessHost(Protocol):
    """What a process asks of the runner that started it: the Engine, its cgroup counters, and a way
    to say it lost track of itself (its container is then swept before the next command)."""

    engine: EngineClient
    faults: CgroupFaults

    def lost(self, attempt_id: str) -> None: ...


class DockerProcess(RunningProcess):
    """A command running in an attempt's container, read from its exec stream."""

    def __init__(
        self,
        host: ProcessHost,
        exec_id: str,
        container_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        attempt_id: str = "",
    ) -> None:
        self._host = host
        self.attempt_id = attempt_id
        self.id = exec_id
        self.container_id = container_id
        self.pid = 0
        self._reader = reader
        self._writer = writer
        self._out = ChunkStream()
        self._err = ChunkStream()
        self.stdout = self._out
        self.stderr = self._err
        self._eof = asyncio.Event()
        self._wait_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        # the exec stream carries stdin too: writes go one at a time, in order, while it is open
        self._stdin_lock = asyncio.Lock()
        self._stdin_open = False
        #: set at the first output (or the end): background work waits for it, not the agent
        self.output_seen = asyncio.Event()

    async def start_prestarted(
        self,
        pre: PrestartedExec,
        argv0: str,
        cwd: str,
        line: bytes,
        stdin: bytes | None,
        interactive: bool = False,
    ) -> bool:
        """Hand ``line`` (then stdin, then end-of-input unless ``interactive``) to a waiting launcher.

        Returns False when the launcher was gone before it read the line: nothing ran, and the caller
        may use a fresh exec instead.
        """
        self.pid = pre.pid
        if pre.early_stderr:
            await self._err.feed(pre.early_stderr)
        self._stdin_open = interactive
        self._tasks.append(
            asyncio.create_task(self._feed_stdin((stdin or b""), prefix=line, close=not interactive))
        )
        try:
            answer = await self._handshake()
        except BaseException:
            self._close()
            raise
        if answer == STARTED:
            self._tasks.append(asyncio.create_task(self._pump()))
            return True
        self._close()
        if answer == NOT_FOUND:
            raise ExecutableNotFound(argv0, "in the attempt's container")
        if answer == NO_CWD:
            raise RunnerError(
                f"could not start {argv0!r} in the container: chdir to {cwd!r}: no such file or directory"
            )
        if answer == CWD_DENIED:
            raise RunnerError(f"could not start {argv0!r} in the container: cannot enter {cwd!r}")
        return False

    async def start(self, argv0: str, stdin: bytes | None, interactive: bool = False) -> None:
        """Feed stdin, read the launcher's pid line, then pump frames in the background."""
        self._stdin_open = interactive
        if stdin is not None or interactive:
            self._tasks.append(asyncio.create_task(self._feed_stdin(stdin or b"", close=not interactive)))
        try:
            first = await self._handshake()
        except BaseException:
            self._close()
            raise
        if first == b"!notfound":
            self._close()
            raise ExecutableNotFound(argv0, "in the attempt's container")
        if not first.isdigit():
            self._close()
            raise RunnerError(f"could not start {argv0!r} in the container: {first.decode(errors='replace')}")
        self.pid = int(first)
        self._tasks.append(asyncio.create_task(self._pump()))

    async def _handshake(self) -> bytes:
        pending = b""
        while b"\n" not in pending:
            frame = await read_frame(self._reader)
            if frame is None:
                return pending.strip() or b"the exec ended before the command started"
            stream, payload = frame
            if stream == STDERR:
                await self._err.feed(payload)
                continue
            pending += payload
            if len(pending) > _HANDSHAKE_LIMIT:
                break
        line, _, rest = pending.partition(b"\n")
        if rest:
            await self._out.feed(rest)
        return line.strip()

    async def _feed_stdin(self, data: bytes, prefix: bytes = b"", *, close: bool = True) -> None:
        async with self._stdin_lock:
            with contextlib.suppress(OSError, RuntimeError):
                if prefix:
                    self._writer.write(prefix)
                if data:
                    self._writer.write(data)
                await self._writer.drain()
                if close:
                    # half-close: the daemon closes the process's stdin, the output side stays open
                    self._writer.write_eof()

    async def write(self, data: bytes) -> None:
        async with self._stdin_lock:
            if not self._stdin_open or self._writer.is_closing() or self._eof.is_set():
                raise StdinClosed("the process's stdin is closed")
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                self._stdin_open = False
                raise StdinClosed(f"the process no longer reads its stdin: {exc}") from exc

    async def close_stdin(self) -> None:
        async with self._stdin_lock:
            if not self._stdin_open:
                return
            self._stdin_open = False
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.write_eof()

    async def _pump(self) -> None:
        try:
            while (frame := await read_frame(self._reader)) is not None:
                stream, payload = frame
                await (self._err if stream == STDERR else self._out).feed(payload)
                self.output_seen.set()
        finally:
            self.output_seen.set()
            self._eof.set()
            self._close()
            await self._out.end()
            await self._err.end()

    def _close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.close()

    async def wait(self) -> int:
        if self.returncode is not None:
            return self.returncode
        async with self._wait_lock:
            if self.returncode is not None:
                return self.returncode
            while True:
                if not self._eof.is_set():
                    # the stream ends with the process, unless a child it left behind holds the pipe
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._eof.wait(), 1.0)
                try:
                    info = await self._host.engine.call(self._host.engine.api.exec_inspect, self.id)
                except RunnerUnavailable:
                    # the exec's fate is unknown: whatever still runs is killed once the Engine answers
                    self._host.lost(self.attempt_id)
                    raise
                if not info.get("Running") and info.get("ExitCode") is not None:
                    break
                if self._eof.is_set():
                    await asyncio.sleep(0.01)
            code = int(info["ExitCode"])
            # also on a clean exit: a child killed for memory or a refused fork leaves the main
            # process's exit code alone, and the counters are the only witness
            oom, self.pids_limit_hit = await self._host.faults.since_last_look(self.container_id)
            if code == SIGKILL_EXIT:
                self.oom_killed = oom or await self._host.engine.oom_flagged(self.container_id)
            else:
                self.child_oom_killed = oom
            self.returncode = code
            return code

    async def stop(self, escalation_seconds: float = 2.0) -> int:
        self.stop_requested = True
        if self.returncode is None and self.pid:
            ticks = max(1, math.ceil(escalation_seconds / _STOP_TICK_SECONDS))
            argv = ["/bin/sh", "-c", STOP_SCRIPT, "anyon-stop", str(self.pid), str(ticks)]
            try:
                await self._host.engine.run_quiet(
                    self.container_id, argv, timeout=4 * escalation_seconds + 10
                )
            except RunnerUnavailable:
                self._host.lost(self.attempt_id)
                raise
            except RunnerError as exc:
                # e.g. the pids limit is exhausted so no exec can start: stopping the container is
                # the only way left to reach the process
                log.warning(
                    "stop inside container %s failed (%s); killing the container", self.container_id, exc
                )
                await self._host.engine.kill_container(self.container_id)
        try:
            return await asyncio.wait_for(asyncio.shield(self.wait()), escalation_seconds + 10)
        except TimeoutError:
            log.warning("process %s outlived its stop; killing container %s", self.id, self.container_id)
            await self._host.engine.kill_container(self.container_id)
            return await self.wait()
