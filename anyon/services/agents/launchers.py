"""Which binary runs a coding agent, and the command line shown to the user (issue "which binary runs").

Each agent is an npm-published CLI (except Cursor's). A user who installed it wants *that* one to run, not
``npx -y <pinned>`` fetching another copy at every start; a deployment without it still works through npx.
:class:`AgentLauncher` decides per start, from the ``[launchers]`` setting of the executor:

* ``auto`` — the CLI's command (``claude``, ``codex``…) when the runner finds it on its PATH (the host's in
  local mode, the runner image's inside the attempt's container in cloud mode), else the pinned npx form;
* ``installed`` — the installed CLI or a clear "not installed; install it with …" failure at once;
* ``npx`` — always the pinned package.

A profile's ``base_command_override`` is used as written. The argv that runs is shown to the user with its
secrets masked (:func:`display_argv`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from anyon.config.redact import MASK, redact_text
from anyon.services.runners.base import ExecutableNotFound, RunnerError


@dataclass(frozen=True)
class AgentCli:
    """One agent CLI: its command on the PATH, its npm package and pinned version, how to install it."""

    executor: str
    program: str
    package: str | None
    version: str | None
    #: arguments the base command has after the program (the router's ``code``)
    base_args: tuple[str, ...] = ()

    @property
    def npx_argv(self) -> list[str]:
        if self.package is None:
            return [self.program, *self.base_args]
        return ["npx", "-y", f"{self.package}@{self.version}", *self.base_args]

    @property
    def install_hint(self) -> str:
        if self.package is None:
            return "the Cursor installer (curl https://cursor.com/install -fsS | bash, or run-agent-setup)"
        return f"npm install -g {self.package}@{self.version}"


# Pinned versions are ones the npm registry serves (checked with `npm view <pkg>@<version> version`).
AGENT_CLIS: Final[dict[str, AgentCli]] = {
    cli.executor: cli
    for cli in (
        AgentCli("CLAUDE_CODE", "claude", "@anthropic-ai/claude-code", "2.0.31"),
        AgentCli("CLAUDE_CODE_ROUTER", "ccr", "@musistudio/claude-code-router", "1.0.73", ("code",)),
        AgentCli("AMP", "amp", "@sourcegraph/amp", "0.0.1790142911-g7618fb"),
        AgentCli("GEMINI", "gemini", "@google/gemini-cli", "0.61.0"),
        AgentCli("QWEN_CODE", "qwen", "@qwen-code/qwen-code", "0.24.4"),
        AgentCli("CODEX", "codex", "@openai/codex", "0.55.0"),
        AgentCli("OPENCODE", "opencode", "opencode-ai", "1.18.33"),
        AgentCli("CURSOR_AGENT", "cursor-agent", None, None),
        AgentCli("COPILOT", "copilot", "@github/copilot", "1.0.102"),
    )
}

LAUNCHERS: Final = ("auto", "installed", "npx")


class AgentNotInstalled(ExecutableNotFound):
    """The agent's CLI is required (launcher "installed", or it has no npm package) and is not there."""

    def __init__(self, cli: AgentCli, where: str) -> None:
        RunnerError.__init__(self, not_installed_message(cli, where))
        self.program = cli.program


def not_installed_message(cli: AgentCli, where: str = "") -> str:
    place = f" {where}" if where else ""
    return f"{cli.program} is not installed{place}; install it with {cli.install_hint}"


def base_command(executor: str) -> str:
    """The default base command of an executor's profiles (the pinned npx form, spec §5.1)."""
    return shlex.join(AGENT_CLIS[executor].npx_argv)


@dataclass(frozen=True)
class Launch:
    """What runs: the argv, how its program was chosen, and the masked line shown to the user."""

    argv: list[str]
    how: str  # "installed" | "npx" | "override"
    display: str

    def to_json(self) -> dict[str, Any]:
        return {"argv": display_tokens(self.argv), "launcher": self.how, "display": self.display}


#: ``which(program)`` → the absolute path the runner found, or None
Which = Callable[[str], Awaitable[str | None]]


class AgentLauncher:
    """Resolves an agent's base command per the ``[launchers]`` settings (see the module docstring)."""

    def __init__(self, modes: Mapping[str, str] | None = None) -> None:
        self._modes = {k.upper(): v for k, v in (modes or {}).items()}
        for executor, mode in self._modes.items():
            if mode not in LAUNCHERS:
                raise ValueError(f"launchers.{executor.lower()} must be one of {', '.join(LAUNCHERS)}")

    def mode(self, executor: str) -> str:
        return self._modes.get(executor, "auto")

    async def resolve(
        self, executor: str, argv: list[str], *, base_tokens: int | None, cli_key: str, which: Which
    ) -> Launch:
        """``argv`` (its first ``base_tokens`` tokens the default base; ``None`` = overridden) → a Launch.

        ``cli_key`` names the CLI of the base (CLAUDE_CODE_ROUTER for the router variant).
        """
        if base_tokens is None:
            return Launch(argv, "override", display_argv(argv))
        cli = AGENT_CLIS[cli_key]
        rest = argv[base_tokens:]
        mode = self.mode(executor)
        if mode != "npx" or cli.package is None:
            found = await which(cli.program)
            if found is not None:
                chosen = [found, *cli.base_args, *rest]
                return Launch(chosen, "installed", display_argv(chosen))
            if mode == "installed" or cli.package is None:
                raise AgentNotInstalled(cli, "where the agent runs")
        chosen = [*cli.npx_argv, *rest]
        return Launch(chosen, "npx", display_argv(chosen))


# --- what the user sees --------------------------------------------------------------------------------

_SECRET_FLAG = re.compile(r"(?i)^--?[a-z0-9_-]*(?:api[_-]?key|token|secret|password|passwd|credential)s?$")
_SECRET_ASSIGN = re.compile(
    r"(?i)^(--?[a-z0-9_-]*(?:api[_-]?key|token|secret|password|passwd|credential)s?=|"
    r"[A-Z0-9_]*(?:API_KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*=)"
)


def display_tokens(argv: list[str]) -> list[str]:
    """``argv`` with credentials masked: ``--api-key X``, ``--token=X``, ``FOO_TOKEN=X``, URL passwords."""
    out: list[str] = []
    mask_next = False
    for token in argv:
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        match = _SECRET_ASSIGN.match(token)
        if match:
            out.append(match.group(1) + MASK)
            continue
        if _SECRET_FLAG.match(token):
            mask_next = True
        out.append(redact_text(token))
    return out


def display_argv(argv: list[str]) -> str:
    """The masked command line, shell-quoted so it can be read (and copied) as one line."""
    return " ".join(_quote(token) for token in display_tokens(argv))


def _quote(token: str) -> str:
    if token.endswith(MASK):  # "--token=***" reads better than "'--token=***'"
        head = token[: -len(MASK)]
        return (shlex.quote(head) if head else "") + MASK
    return shlex.quote(token)
