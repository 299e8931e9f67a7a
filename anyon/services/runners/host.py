"""Local mode: executions are host processes, each the leader of its own session and process group.

A new session means the agent's children share its process group, so one ``killpg`` reaches the whole
tree (shell → agent → tools) and a terminal's Ctrl-C on the server never leaks into agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping

from anyon.config.model import ExecutionSettings
from anyon.services.runners.base import (
    CHUNK_BYTES,
    ExecutableNotFound,
    RunnerError,
    RunningProcess,
    StdinClosed,
    signal_exit_code,
)
from anyon.services.runners.environment import agent_environment

_POLL_SECONDS = 0.02


def _has_live_member(pgid: int) -> bool:
    """On Linux, ignore zombies: an orphan reparented to a non-reaping pid 1 must not stall stop()."""
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # fields after the parenthesised command: state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


class _PipeChunks:
    """Chunks from an asyncio pipe; asyncio pauses the pipe once about twice ``limit`` bytes are unread."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _PipeChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._reader.read(CHUNK_BYTES)
        if not chunk:
            raise StopAsyncIteration
        return chunk


class HostProcess(RunningProcess):
    def __init__(
        self, proc: asyncio.subprocess.Process, stdin: bytes | None, *, interactive: bool = False
    ) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.id = str(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        self.stdout = _PipeChunks(proc.stdout)
        self.stderr = _PipeChunks(proc.stderr)
        self._stdin_task: asyncio.Task[None] | None = None
        self._interactive = interactive
        # writes (the first input, then :meth:`write` calls) reach the pipe one at a time, in order
        self._stdin_lock = asyncio.Lock()
        if proc.stdin is not None:
            self._stdin_task = asyncio.create_task(
                self._feed_stdin(proc.stdin, stdin or b"", close=not interactive)
            )

    async def _feed_stdin(self, writer: asyncio.StreamWriter, data: bytes, *, close: bool) -> None:
        # written in the background so a process that prints before reading cannot deadlock us
        async with self._stdin_lock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if data:
                    writer.write(data)
                    await writer.drain()
            if close:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
                    writer.close()

    async def write(self, data: bytes) -> None:
        writer = self._proc.stdin
        if not self._interactive or writer is None:
            raise StdinClosed("this process was not started with an open stdin")
        async with self._stdin_lock:
            if writer.is_closing():
                raise StdinClosed("the process's stdin is closed")
            try:
                writer.write(data)
                await writer.drain()
            except (BrokenPipeError, ConnectionResetError, OSError) as exc:
                raise StdinClosed(f"the process no longer reads its stdin: {exc}") from exc

    async def close_stdin(self) -> None:
        writer = self._proc.stdin
        if writer is None:
            return
        async with self._stdin_lock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
                writer.close()

    async def wait(self) -> int:
        code = signal_exit_code(await self._proc.wait())
        self.returncode = code
        return code

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _has_live_member(self.pid)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, escalation_seconds: float = 2.0) -> int:
        self.stop_requested = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if not self._group_alive():
                break
            self._signal_group(sig)
            deadline = time.monotonic() + escalation_seconds
            while self._group_alive() and time.monotonic() < deadline:
                await asyncio.sleep(_POLL_SECONDS)
        return await self.wait()


class HostRunner:
    """Runs commands as host processes in the attempt's worktree (spec §4.2, local column).

    ``base_env`` is the whole environment a process starts with (plus the per-command ``env``): the
    allow-listed part of the server's own, built by :func:`~anyon.services.runners.environment.
    agent_environment`, never ``os.environ`` itself, so the server's token and database credentials stay
    with the server. ``None`` gives the default allow-list applied to ``os.environ`` (for tests and tools).
    """

    def __init__(self, base_env: Mapping[str, str] | None = None) -> None:
        if base_env is None:
            base_env = agent_environment(os.environ, ExecutionSettings().host_env_allowlist)
        self._base_env = dict(base_env)

    async def spawn(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        stdin: bytes | None = None,
        *,
        attempt_id: str | None = None,
        interactive: bool = False,
    ) -> HostProcess:
        if not argv:
            raise RunnerError("nothing to run: the command is empty")
        if not os.path.isdir(cwd):
            raise RunnerError(f"working directory {cwd!r} does not exist")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env={**self._base_env, **env},
                stdin=(
                    asyncio.subprocess.PIPE
                    if stdin is not None or interactive
                    else asyncio.subprocess.DEVNULL
                ),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                limit=CHUNK_BYTES,
            )
        except FileNotFoundError as exc:
            raise ExecutableNotFound(argv[0], "on this host's PATH") from exc
        except PermissionError as exc:
            raise RunnerError(f"{argv[0]!r} cannot be executed: {exc.strerror}") from exc
        except OSError as exc:
            raise RunnerError(f"could not start {argv[0]!r}: {exc}") from exc
        return HostProcess(proc, stdin, interactive=interactive)
