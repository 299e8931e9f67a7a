"""The one runner interface both deployment modes share (ARCHITECTURE decision 4).

Everything above a runner — the setup → agent → cleanup chain, log capture, commits, statuses — talks
to :class:`Runner` and :class:`RunningProcess` only, so local mode (host processes) and cloud mode
(per-attempt Docker containers) cannot drift apart. Output arrives as chunks through bounded buffers:
a process that prints without end blocks on its pipe instead of growing the server's memory, which
means a caller must drain *both* streams concurrently (as with any pair of pipes).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

#: Largest chunk handed to a consumer; output is split, never joined, so memory per chunk is bounded.
CHUNK_BYTES = 64 * 1024
#: Chunks buffered per stream before the producer waits for the consumer (~1 MiB per stream).
QUEUE_CHUNKS = 16
#: Exit code the runtime reports for a process killed by SIGKILL (the OOM killer's signal).
SIGKILL_EXIT = 137


class RunnerError(Exception):
    """A process could not be started or managed; the message is meant for the user."""


class RunnerUnavailable(RunnerError):
    """The process runtime itself does not answer (the Docker Engine is down or unreachable).

    The API answers 503: the request was fine, the runtime was not, and retrying later may work.
    """


class ExecutableNotFound(RunnerError):
    """The program named by argv[0] does not exist where the runner looked (spec §2.6 setup_required)."""

    def __init__(self, program: str, where: str) -> None:
        super().__init__(f"executable {program!r} was not found {where}")
        self.program = program


class StdinClosed(RunnerError):
    """The process's stdin is closed (it exited, closed it, or was never interactive)."""


class ChunkStream:
    """An async iterator of output chunks fed by a producer through a bounded queue.

    ``None`` in the queue marks the end; after it every ``__anext__`` ends the iteration.
    """

    def __init__(self, maxsize: int = QUEUE_CHUNKS) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=maxsize)
        self._ended = False

    async def feed(self, data: bytes) -> None:
        """Queue ``data`` in chunks of at most :data:`CHUNK_BYTES`, waiting while the queue is full."""
        for start in range(0, len(data), CHUNK_BYTES):
            await self._queue.put(data[start : start + CHUNK_BYTES])

    async def end(self) -> None:
        await self._queue.put(None)

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> bytes:
        if self._ended:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._ended = True
            raise StopAsyncIteration
        return item


class RunningProcess(abc.ABC):
    """A started process: two output streams, its exit code, and a stop that reaches its whole tree.

    Attributes:
        pid: the process id where it runs (a host pid, or the pid inside the container); it is also the
            id of the process group the runner signals.
        id: a string naming the process for logs (the host pid, or the Engine API exec id).
        stdout, stderr: async iterators of byte chunks; drain both.
        returncode: the exit code once :meth:`wait` returned, else ``None``. A process ended by a
            signal reports 128 + the signal number in both modes (SIGKILL → 137).
        oom_killed: set when the process was killed for exceeding its memory limit.
        child_oom_killed: set when some process of its container was killed for memory while it ran
            (the process itself may still exit 0); only runners that can see it set it.
        pids_limit_hit: set when a fork was refused by the container's pids limit while it ran.
        stop_requested: set once :meth:`stop` was called, so a caller can tell "killed" from "failed".

    A process spawned with ``interactive=True`` keeps its stdin open: :meth:`write` sends more input while
    it runs (an agent's control protocol answers, follow-up messages) and :meth:`close_stdin` ends it.
    """

    pid: int
    id: str
    stdout: AsyncIterator[bytes]
    stderr: AsyncIterator[bytes]
    returncode: int | None = None
    oom_killed: bool = False
    child_oom_killed: bool = False
    pids_limit_hit: bool = False
    stop_requested: bool = False

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin; raises :class:`StdinClosed` once it cannot take more.

        Only a process spawned with ``interactive=True`` has a stdin to write to.
        """
        raise StdinClosed("this process was not started with an open stdin")

    async def close_stdin(self) -> None:
        """End the process's input (it reads end-of-file); a no-op when it is closed already."""
        return None

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait for the process to exit and return its exit code."""

    @abc.abstractmethod
    async def stop(self, escalation_seconds: float = 2.0) -> int:
        """SIGINT the process group, then SIGTERM, then SIGKILL, ``escalation_seconds`` apart.

        Each step is skipped once no process of the group is left. Returns the exit code.
        """


class Runner(Protocol):
    """Starts processes for executions; one implementation per deployment mode."""

    async def spawn(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        stdin: bytes | None = None,
        *,
        attempt_id: str | None = None,
        interactive: bool = False,
    ) -> RunningProcess:
        """Start ``argv`` in ``cwd`` and return once it runs.

        ``env`` holds the variables this command needs on top of the runner's base environment (the
        server's own environment on the host; an allow-listed, minimal one in a container) — do not
        pass ``os.environ`` here. ``stdin`` is written to the process and then closed; ``None`` gives
        it an empty stdin. With ``interactive``, ``stdin`` (if any) is written first and the stdin then
        stays open for :meth:`RunningProcess.write` until :meth:`RunningProcess.close_stdin` or the
        process's exit: the way agents that speak a protocol on stdin/stdout run. ``attempt_id`` names
        the attempt whose container runs the command (required by the Docker runner, ignored by the
        host runner).

        Raises :class:`ExecutableNotFound` when argv[0] cannot be found, :class:`RunnerError` for
        any other reason the process could not start.
        """
        ...


def signal_exit_code(returncode: int) -> int:
    """asyncio reports death by signal N as -N; both modes report 128 + N like a shell does."""
    return 128 - returncode if returncode < 0 else returncode
