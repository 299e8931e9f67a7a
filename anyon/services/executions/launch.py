"""Starting a coding agent: which binary (launchers.py), where it is looked up, and what the user is shown.

The lookup runs where the agent will run — a ``command -v`` through the same runner, so in cloud mode it
asks the attempt's container (the runner image's PATH), not the host. The chosen argv is written into the
process's log first (a ``[anyon] command:`` line every normaliser shows as a system entry) and into its
``executor_action.command``, with secrets masked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from anyon.services.executors import Command
from anyon.services.launchers import AGENT_CLIS, AgentLauncher, Launch, not_installed_message
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


async def resolve(
    launcher: AgentLauncher, runner: Runner, command: Command, cwd: str, attempt_id: str
) -> Launch:
    """The argv to run for ``command`` (an agent's), per the executor's launcher setting."""

    async def which(program: str) -> str | None:
        try:
            return await find_program(runner, program, cwd, attempt_id)
        except ExecutableNotFound:
            return None

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
