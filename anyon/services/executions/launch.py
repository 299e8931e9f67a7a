"""Starting a coding agent: which binary (agents/launchers.py), where it is looked up, and what the user
is shown.

The lookup runs where the agent will run — a ``command -v`` through the same runner, so in cloud mode it
asks the attempt's container (the runner image's PATH), not the host. The chosen argv is written into the
process's log first (a ``[anyon] command:`` line every normaliser shows as a system entry) and into its
``executor_action.command``, with secrets masked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from anyon.services.agents.agent_commands import Command
from anyon.services.agents.launchers import AGENT_CLIS, AgentLauncher, Launch, not_installed_message
from anyon.services.runners.base import ExecutableNotFound, Runner

#: Seconds a PATH lookup may take before the agent is taken as not installed there.
LOOKUP_SECONDS = 20.0
_LOOKUP = 'command -v -- "$0" 2>/dev/null || true'


async def find_program(runner: Runner, program: str, cwd: str, attempt_id: str) -> str | None:
    """The absolute path of ``program`` on the PATH where the runner runs commands, or None."""
    argv = ["/bin/sh", "-c", _LOOKUP, program]
    run_captured = getattr(runner, "run_captured", None)
    if run_captured is not None:  # the Docker runner: one exec in the attempt's container
        _code, out, _err = await run_captured(attempt_id, argv, cwd, timeout=LOOKUP_SECONDS)
    else:
        proc = await runner.spawn(argv, cwd, {}, None, attempt_id=attempt_id)
        chunks: list[bytes] = []

        async def drain() -> None:
            async for chunk in proc.stdout:
                chunks.append(chunk)
            async for _ in proc.stderr:
                pass
            await proc.wait()

        try:
            await asyncio.wait_for(drain(), LOOKUP_SECONDS)
        except TimeoutError:
            await proc.stop(0.5)
            return None
        out = b"".join(chunks)
    found = out.decode("utf-8", "replace").strip().splitlines()
    path = found[0].strip() if found else ""
    return path if path.startswith("/") else None


#: Containers whose found CLIs are remembered at most (the oldest are forgotten first).
_CACHED_CONTAINERS = 256


class FoundPrograms:
    """CLIs found in an attempt's container: its image does not change, so a found path stays valid and a
    follow-up starts without another lookup exec. Host lookups are not kept (the user may install or
    remove a CLI at any time); a CLI not found is looked up again (run-agent-setup may install it)."""

    def __init__(self) -> None:
        self._found: dict[str, dict[str, str]] = {}

    def get(self, attempt_id: str, program: str) -> str | None:
        return self._found.get(attempt_id, {}).get(program)

    def put(self, attempt_id: str, program: str, path: str) -> None:
        if attempt_id not in self._found and len(self._found) >= _CACHED_CONTAINERS:
            self._found.pop(next(iter(self._found)))
        self._found.setdefault(attempt_id, {})[program] = path


async def resolve(
    launcher: AgentLauncher,
    runner: Runner,
    command: Command,
    cwd: str,
    attempt_id: str,
    found: FoundPrograms | None = None,
) -> Launch:
    """The argv to run for ``command`` (an agent's), per the executor's launcher setting."""
    in_container = getattr(runner, "run_captured", None) is not None
    cache = found if in_container else None

    async def which(program: str) -> str | None:
        if cache is not None and (known := cache.get(attempt_id, program)) is not None:
            return known
        try:
            path = await find_program(runner, program, cwd, attempt_id)
        except ExecutableNotFound:
            return None
        if cache is not None and path is not None:
            cache.put(attempt_id, program, path)
        return path

    return await launcher.resolve(
        command.executor, command.argv, base_tokens=command.base_tokens, cli_key=command.cli, which=which
    )


def spawn_failure_message(command: Command | None, exc: Exception) -> str:
    """A missing program in words a person acts on: which CLI, and how to install it."""
    if isinstance(exc, ExecutableNotFound) and command is not None and command.cli in AGENT_CLIS:
        cli = AGENT_CLIS[command.cli]
        if exc.program in (cli.program, "npx") or exc.program.endswith("/" + cli.program):
            if exc.program == "npx":
                return (
                    f"npx is not installed where agents run, so {cli.program} cannot be fetched; install "
                    f"Node.js (with npm), or install the CLI itself: {cli.install_hint}"
                )
            return str(exc) if "install it with" in str(exc) else not_installed_message(cli)
        return f"{exc.program} is not installed or not on the PATH where agents run ({exc})"
    return str(exc)


def action_with_command(action: dict[str, Any], launch: Launch) -> dict[str, Any]:
    """The process's ExecutorAction with the command that ran (masked) under ``command``."""
    return {**action, "command": launch.to_json()}
