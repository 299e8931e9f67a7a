"""What every agent protocol client shares: the engine-facing interface, line splitting, ordered writes.

A client talks to one agent process over the stdin/stdout the runner keeps open (``interactive``): it writes
the opening messages, reads the agent's stdout lines (the engine hands it every chunk, after the normaliser
saw it), answers the agent's requests — tool approvals through
:class:`~anyon.services.agents.approvals.ApprovalService` — and, when the process ended, says whether the run
may count as completed. It never touches the database or the runner directly beyond its process handle: what
it shows goes through the :class:`ProtocolSink` the engine gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from anyon.services.agents.approvals import ApprovalService, ApprovalStatus, PendingApproval
from anyon.services.logs.jsonpatch import Op
from anyon.services.normalizer.entries import LogNormalizer, approval_line, approval_tool_status
from anyon.services.runners.base import RunnerError, RunningProcess

log = logging.getLogger(__name__)

#: Seconds the end of a run waits for the client's last writes and answers before giving up on them.
FINISH_GRACE_SECONDS = 2.0
#: Why an approval ended when the agent cancelled its own question (shown on the tool's entry).
WITHDRAWN_REASON = "The agent withdrew the question before it was answered"
#: Longest stdout line a client parses (a longer one is still logged and normalised, never parsed here).
MAX_LINE_CHARS = 8 * 1024 * 1024


@dataclass
class ProtocolSink:
    """How a client shows things: patches to the live log, lines into the stored log, server notes.

    ``log_line`` writes a server line into the process's stdout log (the normaliser sees it, and so does a
    later replay); ``push_patch`` sends ops to live readers only; ``note`` is a server error line.
    """

    push_patch: Callable[[list[Op]], object]
    log_line: Callable[[str], None]
    note: Callable[[str], None]


@dataclass
class RunRequest:
    """What a client needs to know about the run it drives."""

    process_id: uuid.UUID
    prompt: str
    #: the agent's session to resume (a follow-up), else ``None``
    session_id: str | None
    #: the profile's options (types.md §5), e.g. ``plan``, ``approvals``, ``sandbox``
    options: dict[str, Any]
    worktree: str


class AgentClient:
    """Base class of the protocol clients (one per executor family); see the module docstring."""

    #: spawn with stdin kept open (the runner's ``interactive``)
    interactive = True

    def __init__(self, run: RunRequest, normalizer: LogNormalizer, approvals: ApprovalService | None) -> None:
        self.run = run
        self.normalizer = normalizer
        self.approvals = approvals
        self._handle: RunningProcess | None = None
        self._sink: ProtocolSink | None = None
        self._pieces: list[str] = []
        self._pending_chars = 0
        self._overflow = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stdin_closed = False
        self.stopping = False
        #: approvals being waited for, by the agent's own request key (see :meth:`withdraw`)
        self._asking: dict[str, PendingApproval] = {}
        self._withdrawn: set[str] = set()

    # --- engine-facing ------------------------------------------------------------------------------

    def initial_input(self) -> bytes:
        """Bytes written to stdin at spawn (the opening messages)."""
        return b""

    def attach(self, handle: RunningProcess, sink: ProtocolSink) -> None:
        """The process runs: from now on the client may write to it and show things."""
        self._handle = handle
        self._sink = sink
        self.started()

    def started(self) -> None:
        """Hook: the process was attached (after :meth:`initial_input` was written)."""

    def on_stdout(self, text: str) -> None:
        """A chunk of the agent's stdout; complete lines are parsed and dispatched.

        An unfinished line is kept as pieces (joined once, when it ends), so a long line costs linear
        time; past :data:`MAX_LINE_CHARS` it is dropped here (it is still logged and normalised).
        """
        start = 0
        while (end := text.find("\n", start)) >= 0:
            self._keep(text[start:end])
            line, self._pieces, self._pending_chars = "".join(self._pieces), [], 0
            if self._overflow:
                self._overflow = False
            else:
                self._dispatch(line)
            start = end + 1
        self._keep(text[start:])

    def _keep(self, piece: str) -> None:
        if self._overflow or not piece:
            return
        self._pending_chars += len(piece)
        if self._pending_chars > MAX_LINE_CHARS:
            self._pieces, self._pending_chars, self._overflow = [], 0, True
        else:
            self._pieces.append(piece)

    def _dispatch(self, line: str) -> None:
        line = line.strip()
        if not line.startswith("{"):
            return
        try:
            message = json.loads(line)
        except ValueError:
            return
        if isinstance(message, dict):
            try:
                self.on_message(message)
            except Exception:  # a malformed message must not break the engine's output pump
                log.exception("process %s: could not handle an agent message", self.run.process_id)

    def on_message(self, message: dict[str, Any]) -> None:
        """One JSON object from the agent's stdout."""

    async def interrupt(self) -> bool:
        """The user stops the run: pending approvals end, then the agent is asked to stop (best effort).

        Returns True when the agent was asked: the engine then gives it a moment to end by itself before
        the signals.
        """
        self.stopping = True
        if self.approvals is not None:
            self.approvals.cancel_process(self.run.process_id)
        return False

    async def finish(self) -> None:
        """The process ended: pending approvals end, and the client's own work is wound up."""
        self.stopping = True
        if self.approvals is not None:
            self.approvals.cancel_process(self.run.process_id)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=FINISH_GRACE_SECONDS)
        for task in list(self._tasks):
            task.cancel()

    def failure(self) -> str | None:
        """Why a run that exited 0 must not count as completed, or ``None`` when it may."""
        if self.normalizer.summary is None:
            return "The agent ended without answering: no assistant message was produced."
        return None

    # --- helpers for subclasses ---------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in the background; the end of the run waits for it (briefly), then cancels it."""
        task = asyncio.ensure_future(coro)
        task.set_name(f"{name}:{self.run.process_id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("process %s: %s failed: %s", self.run.process_id, task.get_name(), task.exception())

    def send(self, message: dict[str, Any]) -> None:
        """Write one JSON line to the agent, after everything written before it."""
        data = (json.dumps(message, ensure_ascii=False) + "\n").encode()
        self.spawn(self._write(data), "agent-write")

    async def _write(self, data: bytes) -> None:
        if self._handle is None or self._stdin_closed:
            return
        with contextlib.suppress(RunnerError):  # the agent exited or closed its stdin: nothing to tell
            await self._handle.write(data)

    def close_stdin(self) -> None:
        """End the agent's input once everything before it was written (the agent then exits)."""
        if self._handle is None or self._stdin_closed:
            return
        handle = self._handle

        async def close() -> None:
            # queued behind the writes already scheduled: the lock of the runner keeps the order
            await asyncio.sleep(0)
            self._stdin_closed = True
            await handle.close_stdin()

        self.spawn(close(), "agent-close-stdin")

    def show(self, ops: list[Op]) -> None:
        if ops and self._sink is not None:
            self._sink.push_patch(ops)

    def note(self, message: str) -> None:
        if self._sink is not None:
            self._sink.note(message)

    async def ask(
        self, call_id: str, tool_name: str, arguments: Any, *, key: str | None = None
    ) -> ApprovalStatus:
        """Ask the user about one tool call: pending in the log, then the outcome (stored, for replays).

        ``key`` is the agent's id of its request, for an agent that may withdraw it (:meth:`withdraw`).
        """
        if self.approvals is None or self.stopping:
            return {"status": "denied", "reason": "The execution process is stopping"}
        if key is not None and key in self._withdrawn:
            return {"status": "denied", "reason": WITHDRAWN_REASON}
        if not self.normalizer.has_tool(call_id):
            self.show(self.normalizer.add_tool(call_id, tool_name, arguments))
        approval = self.approvals.request(self.run.process_id, tool_name, call_id)
        self.show(self.normalizer.tool_status(call_id, approval.tool_status()))
        if key is not None:
            self._asking[key] = approval
        try:
            status = await approval.wait()
        finally:
            if key is not None:
                self._asking.pop(key, None)
        self.record_outcome(call_id, tool_name, status)
        return status

    def withdraw(self, key: str) -> None:
        """The agent cancelled its request ``key``: its approval ends (denied, saying so), unanswered."""
        self._withdrawn.add(key)
        approval = self._asking.get(key)
        if approval is not None and self.approvals is not None:
            self.approvals.withdraw(approval.id, WITHDRAWN_REASON)

    def withdrawn(self, key: str) -> bool:
        """Whether the agent cancelled its request ``key`` (it then expects no answer)."""
        return key in self._withdrawn

    def record_outcome(self, call_id: str, tool_name: str, status: ApprovalStatus) -> None:
        """The approval's outcome into the stored log (and so the live log), as a server line."""
        if self._sink is None:
            return
        if self.normalizer.line_open:  # the agent is mid-line: showing it live is all that can be done
            self.show(self.normalizer.tool_status(call_id, approval_tool_status(status)))
            return
        self._sink.log_line(approval_line(call_id, tool_name, status))
