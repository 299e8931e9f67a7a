"""Pre-started execs: pay the Engine API exec cost before a command is requested.

Creating and starting an exec costs tens of milliseconds (two Engine API round trips, then runc
entering the container's namespaces). A pre-started exec is a shell already running in the attempt's
container, attached to our stream, that prints its pid and waits for one line naming the command;
spawning then only writes that line, and the shell ``exec``s the command in place. The command keeps
the exec's pid (a session leader, so also its process group — what ``stop()`` signals), its stdin (the
bytes after the line), its stdout/stderr stream and its exit code (the exec's ``ExitCode``).

The line is shell code built here from the request: ``cd`` to the working directory, ``export`` the
variables, check argv[0] like the fresh launcher, print ``+``, ``exec`` argv. Every word is single-quoted;
a newline inside a word becomes ``'"$anyon_nl"'`` so the request stays one line. Requests the line cannot
carry faithfully (a variable name the shell cannot export, a NUL byte, a huge line) use a fresh exec.

:class:`Prestarts` keeps one waiting launcher per attempt (``docker.prestart_exec``), started in the
background when the container is ensured and again after each command that took one has printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from anyon.config.model import DockerSettings
from anyon.services.runners.base import RunnerError
from anyon.services.runners.container_table import ContainerTable
from anyon.services.runners.engine_client import EngineClient
from anyon.services.runners.engine_stream import STDERR, read_frame

log = logging.getLogger(__name__)

#: argv[0] of the waiting shell, so it can be told apart in the container's process list.
PRESTART_NAME = "anyon-prestarted"
#: Prints the pid, then runs one line of shell code; a closed stdin (server gone) ends it quietly.
PRESTART_LAUNCHER = """anyon_nl='
'
printf '%s\\n' "$$"
IFS= read -r anyon_line || exit 0
eval "$anyon_line"
exit 126"""
#: The line after which the requested program runs (anything else is an error marker).
STARTED = b"+"
NO_CWD = b"!nocwd"
CWD_DENIED = b"!cwd"
NOT_FOUND = b"!notfound"
#: Longer command lines go through a fresh exec: ``read`` takes one byte per system call.
MAX_LINE_BYTES = 64 * 1024

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def sh_word(value: str) -> str:
    """One shell word that expands to ``value`` exactly, on one line."""
    return '"$anyon_nl"'.join(shlex.quote(part) if part else "''" for part in value.split("\n"))


def command_line(argv: list[str], cwd: str, env: Mapping[str, str]) -> bytes | None:
    """The line a pre-started exec runs for this request, or ``None`` when it needs a fresh exec."""
    words = [*argv, cwd, *env, *env.values()]
    if any("\0" in w for w in words) or not all(_NAME.match(name) for name in env):
        return None
    q_cwd = sh_word(cwd)
    parts = [
        f"[ -d {q_cwd} ] || {{ printf '!nocwd\\n'; exit 126; }}",
        f"cd -- {q_cwd} 2>/dev/null || {{ printf '!cwd\\n'; exit 126; }}",
    ]
    if env:
        parts.append("export " + " ".join(sh_word(f"{k}={v}") for k, v in env.items()))
    q_argv = [sh_word(a) for a in argv]
    parts.append(f"command -v {q_argv[0]} >/dev/null 2>&1 || {{ printf '!notfound\\n'; exit 127; }}")
    parts.append("printf '+\\n'")
    parts.append("exec " + " ".join(q_argv))
    line = ("; ".join(parts) + "\n").encode()
    return line if len(line) <= MAX_LINE_BYTES else None


@dataclass
class PrestartedExec:
    """A waiting launcher: its exec, its pid in the container and our end of its stream."""

    exec_id: str
    container_id: str
    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    #: stderr the shell printed before the pid line (nothing, normally); handed to the process.
    early_stderr: bytes = b""
    leftover: bytes = field(default=b"")

    @property
    def alive(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        """Closing our end closes the shell's stdin: ``read`` fails and the shell exits."""
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()


class Prestarts:
    """One waiting launcher per attempt, and the task starting the next one."""

    def __init__(
        self,
        settings: DockerSettings,
        engine: EngineClient,
        table: ContainerTable,
        exec_prefix: tuple[str, ...] = (),
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._table = table
        self._exec_prefix = exec_prefix
        self.waiting: dict[str, PrestartedExec] = {}
        self.starting: dict[str, asyncio.Task[PrestartedExec | None]] = {}
        self._refills: set[asyncio.Task[None]] = set()

    def prestart(self, attempt_id: str) -> None:
        """Start a waiting launcher in the attempt's container in the background, unless one exists."""
        if not self._settings.prestart_exec:
            return
        pre = self.waiting.get(attempt_id)
        if pre is not None and pre.alive:
            return
        task = self.starting.get(attempt_id)
        if task is not None and not task.done():
            return
        task = asyncio.get_running_loop().create_task(
            self._start(attempt_id), name=f"anyon-prestart:{attempt_id}"
        )
        self.starting[attempt_id] = task
        task.add_done_callback(functools.partial(self._done, attempt_id))

    def _done(self, attempt_id: str, task: asyncio.Task[PrestartedExec | None]) -> None:
        if self.starting.get(attempt_id) is task:
            del self.starting[attempt_id]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.info("could not pre-start an exec for attempt %s: %s", attempt_id, exc)

    async def _start(self, attempt_id: str) -> PrestartedExec | None:
        container = self._table.containers.get(attempt_id)
        if container is None:
            return None
        created = await self._engine.call(
            lambda: self._engine.api.exec_create(
                container.id,
                [*self._exec_prefix, "/bin/sh", "-c", PRESTART_LAUNCHER, PRESTART_NAME],
                stdin=True,
            )
        )
        exec_id = str(created["Id"])
        reader, writer = await self._engine.start_exec(exec_id)
        pre = PrestartedExec(exec_id, container.id, 0, reader, writer)
        try:
            line, early_stderr = b"", b""
            while not line.endswith(b"\n"):
                frame = await asyncio.wait_for(read_frame(reader), 30)
                if frame is None:
                    raise RunnerError("the pre-started exec ended at once")
                if frame[0] == STDERR:
                    early_stderr += frame[1]
                else:
                    line += frame[1]
            if not line.strip().isdigit():
                raise RunnerError(f"unexpected first line from the pre-started exec: {line[:80]!r}")
            pre.pid, pre.early_stderr = int(line), early_stderr
        except BaseException:
            pre.close()
            raise
        if self._table.containers.get(attempt_id) is not container:  # removed or replaced meanwhile
            pre.close()
            return None
        old = self.waiting.pop(attempt_id, None)
        if old is not None:
            old.close()
        self.waiting[attempt_id] = pre
        return pre

    async def take(self, attempt_id: str, container_id: str) -> PrestartedExec | None:
        """The attempt's waiting launcher, or the one being started (sooner than a fresh exec)."""
        pre = self.waiting.pop(attempt_id, None)
        if pre is None:
            task = self.starting.get(attempt_id)
            if task is None:
                return None
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
            pre = self.waiting.pop(attempt_id, None)
        if pre is None:
            return None
        if pre.container_id != container_id or not pre.alive:
            pre.close()
            return None
        return pre

    def refill_after(self, attempt_id: str, output_seen: asyncio.Event) -> None:
        """Start the next waiting launcher once the process printed (nothing at start may delay it)."""
        if not self._settings.prestart_exec:
            return

        async def refill() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(output_seen.wait(), 0.5)
            if attempt_id in self._table.containers:
                self.prestart(attempt_id)

        task = asyncio.get_running_loop().create_task(refill(), name=f"anyon-refill:{attempt_id}")
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def drop(self, attempt_id: str) -> None:
        task = self.starting.pop(attempt_id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        pre = self.waiting.pop(attempt_id, None)
        if pre is not None:
            pre.close()

    async def close(self) -> None:
        """End every waiting launcher (their stdin closes with our side of the stream)."""
        for task in list(self._refills):
            task.cancel()
        for attempt_id in list(self.waiting) + list(self.starting):
            await self.drop(attempt_id)
