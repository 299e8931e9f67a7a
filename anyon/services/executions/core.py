"""What every part of the execution engine shares: the attempt's context, a live process, and the core.

The engine is split by responsibility (see ``docs/architecture.md``): starting an attempt
(:mod:`.start`, :mod:`.preparation`, :mod:`.head_start`), running one process (:mod:`.supervisor`,
:mod:`.output`, :mod:`.finish`, :mod:`.records`), stopping (:mod:`.stopping`), the conversation with the
agent (:mod:`.conversation`) and cleanup (:mod:`.cleanup`). They meet here: :class:`EngineCore` holds the
state they all read — the supervised processes, the background tasks, the start timings — so that no
part has to reach into another for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from anyon.config.model import ExecutionSettings
from anyon.services.agents.agent_commands import Command
from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.agents.profile_catalog import ExecutorProfileId, ProfileError
from anyon.services.board.attempt_repos import Checkout
from anyon.services.board.changes import ChangeNotifier
from anyon.services.db.database import Database
from anyon.services.errors import ServiceError
from anyon.services.executions.timings import StartTimings
from anyon.services.logs.logcap import LogCap
from anyon.services.logs.logstore import LogStore
from anyon.services.logs.msgstore import MsgStore
from anyon.services.normalizer import LogNormalizer
from anyon.services.protocols import AgentClient
from anyon.services.runners.base import RunningProcess
from anyon.services.runners.contracts import ContainerProvisioner

__all__ = [
    "AttemptContext",
    "ContainerProvisioner",
    "EngineCore",
    "FinishedHook",
    "LiveProcess",
    "parse_profile",
]


@dataclass
class AttemptContext:
    """What a process of an attempt needs, read once from the database."""

    attempt_id: uuid.UUID
    task_id: uuid.UUID
    project_id: uuid.UUID
    repo_path: str
    worktree: str
    branch: str
    cleanup_script: str | None
    task_title: str

    @property
    def checkout(self) -> Checkout:
        return Checkout(self.attempt_id, self.repo_path, self.worktree, self.branch)


@dataclass
class LiveProcess:
    """A process this server supervises, from its row's insert to its close: what every part reads."""

    process_id: uuid.UUID
    context: AttemptContext
    run_reason: str
    action: dict[str, Any]
    store: MsgStore
    handle: RunningProcess | None = None
    supervisor: asyncio.Task[None] | None = None
    stop_requested: bool = False
    normalizer: LogNormalizer | None = None
    #: the agent's protocol client (it writes to the agent and answers its requests), if it has one
    protocol: AgentClient | None = None
    session_saved: bool = False
    first_output_seen: bool = False
    pending_logs: list[tuple[str, str]] = field(default_factory=list)
    pending_bytes: int = 0
    #: set at the process's first byte of output (the queue notice before its spawn does not count)
    output: asyncio.Event = field(default_factory=asyncio.Event)
    #: why the server ended the process itself (a timeout): it then ends ``failed``, not ``killed``
    failure_reason: str | None = None
    queued_at: float | None = None
    queue_flush: asyncio.Task[Any] | None = None
    stderr_line_open: bool = False
    stderr_tail: str = ""
    pids_limit_noted: bool = False
    # one flush at a time: batches reach the log store in the order they were emitted
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flush_timer: asyncio.TimerHandle | None = None
    cap: LogCap = field(default_factory=lambda: LogCap(0))  # executions.log_cap_bytes: head and tail kept
    command: Command | None = None  # a coding agent's command, before the launcher picks its binary
    failure_acted: bool = False  # the agent's output reported a failure (failures.py): the run fails
    #: its final status is recorded; what is left is closing (rows, hooks), then :attr:`closed` is set
    finishing: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)


#: Called once an attempt has nothing left to run: (attempt id, its last process id).
FinishedHook = Callable[[uuid.UUID, uuid.UUID], None]


class EngineCore:
    """The engine's shared state: supervised processes, background tasks, timings, first-output events.

    One instance per server, built in :mod:`anyon.services.container` and handed to each part
    (:mod:`anyon.services.composition.executions`).
    """

    def __init__(
        self, database: Database, changes: ChangeNotifier, logstore: LogStore, settings: ExecutionSettings
    ) -> None:
        self.db = database
        self.changes = changes
        self.logstore = logstore
        self.settings = settings
        self.live: dict[uuid.UUID, LiveProcess] = {}
        self.timings = StartTimings()
        self.background: set[asyncio.Task[Any]] = set()
        #: attempts whose first byte of output someone waits for (a pool refill)
        self.first_output: dict[uuid.UUID, asyncio.Event] = {}
        #: the serving loop, known from the first attempt created (a warm slot is discarded on it)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def db_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, with a database connection."""

        def call() -> Any:
            with self.db.connection():
                return fn(*args)

        return await asyncio.to_thread(call)

    def spawn_background(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """A task the server keeps a reference to (and cancels at shutdown)."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def process_changed(self, process_id: uuid.UUID) -> None:
        await asyncio.to_thread(self.changes.process_changed, process_id)

    def of_attempt(self, attempt_id: uuid.UUID) -> list[LiveProcess]:
        return [lv for lv in list(self.live.values()) if lv.context.attempt_id == attempt_id]

    def attempt_busy(self, attempt_id: uuid.UUID) -> bool:
        """Something of the attempt other than its dev server runs (or waits for a slot)."""
        return bool(self._busy_entries(attempt_id))

    def _busy_entries(self, attempt_id: uuid.UUID) -> list[LiveProcess]:
        return [
            lv
            for lv in list(self.live.values())
            if lv.context.attempt_id == attempt_id and lv.run_reason != "devserver"
        ]

    async def wait_while_finishing(self, attempt_id: uuid.UUID, timeout: float) -> None:
        """Wait (at most ``timeout``) for the attempt's processes that are only closing.

        A process's final status is written before its close (after-head commit, task status, hooks), so
        a user who sees "completed" and sends a follow-up at once would otherwise get a 409 "still
        running". A process that still runs, or the chain's next one, is not waited for.
        """
        entries = self._busy_entries(attempt_id)
        if not entries or not all(lv.finishing for lv in entries):
            return
        waits = [asyncio.ensure_future(lv.closed.wait()) for lv in entries]
        try:
            await asyncio.wait(waits, timeout=timeout)
        finally:
            for wait in waits:
                wait.cancel()


def parse_profile(profiles: ExecutorProfiles, value: Any) -> ExecutorProfileId:
    """An executor profile from a request body, or a :class:`ServiceError` that says why not."""
    try:
        return profiles.profile_id_from_json(value)
    except (ProfileError, ValueError, TypeError) as exc:
        raise ServiceError(f"Invalid executor profile: {exc}") from None
