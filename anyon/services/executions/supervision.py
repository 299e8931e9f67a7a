"""What the engine watches while a process runs, and the words it uses when something goes wrong.

An agent that never answers (no network, a package registry that never responds, a CLI sitting at a
login prompt) would otherwise hold its slot and show ``running`` with an empty log for as long as the
tool's own timeouts take — often a quarter of an hour. The limits here turn that into a ``failed``
process with a message that names the likely cause. The other notes make an outcome honest: an agent
that exits 0 without a word, a child killed for memory, a command that could not fork.

Which limits apply to which process (see :func:`limits_for`):

* start timeout — coding agents only. An agent always prints something when it works (its session
  line, its first message); a setup or cleanup script may legitimately be silent (``npm ci --silent``).
* maximum run time — coding agents and setup/cleanup scripts, which hold the attempt and a slot. The
  dev server is meant to run until stopped and never gets one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from anyon.config.model import ExecutionSettings

#: The shells', Python's and libuv's words for a fork refused for lack of pids (EAGAIN on fork/clone).
_PIDS_EXHAUSTED = re.compile(
    r"fork: (?:retry: )?resource temporarily unavailable"
    r"|cannot fork|can't fork|fork failed|failed to fork|unable to fork"
    r"|pthread_create[^\n]{0,60}resource temporarily unavailable"
    r"|blockingioerror: \[errno 11\] resource temporarily unavailable",
    re.IGNORECASE,
)
#: Characters of the previous stderr chunk kept so a message split across two chunks is still found.
TAIL_CHARS = 80


@dataclass(frozen=True)
class Limits:
    """Seconds; ``0`` means no limit."""

    start_timeout: float
    max_run: float

    @property
    def any(self) -> bool:
        return self.start_timeout > 0 or self.max_run > 0


def limits_for(run_reason: str, settings: ExecutionSettings) -> Limits:
    if run_reason == "devserver":
        return Limits(0.0, 0.0)
    start = settings.start_timeout_seconds if run_reason == "codingagent" else 0.0
    return Limits(max(0.0, start), max(0.0, settings.max_run_seconds))


def start_timeout_message(seconds: float) -> str:
    return (
        f"The coding agent printed nothing in the {seconds:g} s after it started "
        "(executions.start_timeout_seconds); it was stopped. Likely causes: no network for the agent "
        "(in cloud mode, docker.network), a package registry that does not answer (the agent's CLI is "
        "being downloaded, e.g. by npx), or the agent's CLI waiting for a login (sign in once, or set "
        "its API key)."
    )


def max_run_message(seconds: float, run_reason: str) -> str:
    what = "The coding agent" if run_reason == "codingagent" else "The script"
    return f"{what} ran longer than the {seconds:g} s allowed (executions.max_run_seconds); it was stopped."


NO_OUTPUT_MESSAGE = (
    "The coding agent exited with code 0 but printed nothing at all: it most likely did not run "
    "(check that its CLI is installed and signed in, its API key and model access). Its result is "
    "not a success to rely on."
)

CHILD_OOM_MESSAGE = (
    "A process inside the attempt's container was killed for exceeding the memory limit "
    "(docker.memory); the command's result may be incomplete."
)

PIDS_LIMIT_MESSAGE = (
    "The process limit was reached: a command could not start a new process "
    "(in cloud mode, docker.pids_limit caps the processes of an attempt's container). "
    "A runaway loop or a tool starting many processes is the usual cause."
)


def names_pids_exhaustion(text: str) -> bool:
    """Does this stderr text say that a fork was refused for lack of processes?"""
    return _PIDS_EXHAUSTED.search(text) is not None
