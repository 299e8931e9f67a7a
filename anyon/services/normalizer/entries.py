"""NormalizedEntry builders (types.md §10) and the base of every log normaliser.

A normaliser turns an agent's raw stdout/stderr into the conversation the UI shows: a growing array of
``NormalizedEntry`` objects, delivered as JSON Patch ops on ``/entries/<n>`` (``add`` for a new entry,
``replace`` when an entry changes, e.g. a tool call's status once its result arrives). It also remembers what
the execution engine needs after the run: the agent's session id (for follow-ups) and the last assistant
message (the session summary, also used as the commit message).

Output arrives in chunks, not lines (spec §2.5), so the base class reassembles lines per stream.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, Literal

from anyon.services.logs.jsonpatch import Op, entry_add, entry_replace, normalized_entry_value
from anyon.services.logs.logcap import is_marker
from anyon.services.normalizer.failures import Diagnosis, diagnose, is_npm_notice

SUMMARY_MAX_CHARS: Final = 4096
#: A line the server writes into an agent's stdout log when a tool approval was answered, so that a replay
#: of the stored log shows the outcome too: ``{"anyon_approval": {"call_id", "tool_name", "status"}}``.
APPROVAL_LINE_PREFIX: Final = '{"anyon_approval":'


def approval_line(call_id: str, tool_name: str, status: dict[str, Any]) -> str:
    """The stored record of an approval's outcome (see :data:`APPROVAL_LINE_PREFIX`)."""
    body = {"call_id": call_id, "tool_name": tool_name, "status": status}
    return json.dumps({"anyon_approval": body}, ensure_ascii=False) + "\n"


def approval_tool_status(status: dict[str, Any]) -> dict[str, Any]:
    """ApprovalStatus → the ToolStatus the entry shows: approved tools go back to ``created`` (they run)."""
    kind = status.get("status")
    if kind == "denied":
        reason = status.get("reason")
        return {"status": "denied", "reason": reason if isinstance(reason, str) else None}
    if kind == "timed_out":
        return {"status": "timed_out"}
    return {"status": "created"}


#: A line the server writes into an agent's stdout before starting it: the command line that runs. Every
#: normaliser shows it as a system entry, so live and replayed logs agree.
COMMAND_PREFIX: Final = "[anyon] command: "
#: The server's stderr line when an agent could not be started; a missing CLI is a setup_required entry.
SPAWN_FAILED_PREFIX: Final = "Failed to start execution: "
NOT_INSTALLED_WORDS: Final = "is not installed"


Entry = dict[str, Any]
Clock = Callable[[], str]


def utc_now() -> str:
    """RFC 3339 with milliseconds and ``Z``, the timestamp format of the wire (types.md §0)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def entry(entry_type: dict[str, Any], content: str, *, timestamp: str | None, metadata: Any = None) -> Entry:
    return {"timestamp": timestamp, "entry_type": entry_type, "content": content, "metadata": metadata}


def simple_type(
    kind: Literal["user_message", "assistant_message", "system_message", "thinking", "loading"],
) -> dict[str, Any]:
    return {"type": kind}


def error_type(kind: Literal["setup_required", "other"] = "other") -> dict[str, Any]:
    return {"type": "error_message", "error_type": {"type": kind}}


def tool_use_type(tool_name: str, action_type: dict[str, Any], status: str = "created") -> dict[str, Any]:
    return {
        "type": "tool_use",
        "tool_name": tool_name,
        "action_type": action_type,
        "status": {"status": status},
    }


def setup_required_entry(message: str, *, timestamp: str | None = None) -> Entry:
    """The entry written when an agent's executable is missing (spec §2.6)."""
    return entry(error_type("setup_required"), message, timestamp=timestamp or utc_now())


class LogNormalizer:
    """Base: line reassembly, the entries array, stderr as error entries, session id and summary.

    Subclasses implement :meth:`_stdout_line`. Every public ``feed_*`` returns the ops produced, in order.
    """

    def __init__(self, *, clock: Clock | None = None, keep_entries: bool = True) -> None:
        """``keep_entries=False`` is for live processes: memory stays bounded whatever the agent prints.

        Then only the entries a later line may still update (a tool use awaiting its result) are kept;
        ``entries`` stays empty and :attr:`entry_count` tells the next index. A replay of a stored log keeps
        them all, to answer with the whole conversation.
        """
        self._clock = clock or utc_now
        self._keep_all = keep_entries
        self.entries: list[Entry] = []
        self.entry_count = 0
        self._pending: dict[int, Entry] = {}
        #: tool call id → index of its entry, while a later line (result, approval) may update it
        self._tool_index: dict[str, int] = {}
        self.session_id: str | None = None
        #: the session id the server chose for an agent that names it nowhere in its output (Copilot's
        #: ``--session-id``); such a normaliser adopts it once the agent answered, i.e. the session exists
        self.planned_session_id: str | None = None
        self._last_assistant: str | None = None
        self._partial = {"stdout": "", "stderr": ""}
        #: the first failure read from the agent's output (failures.py); the engine ends the run on it
        self.failure: Diagnosis | None = None
        #: output-only agents: a run without any assistant message is not a success
        self.requires_answer = False

    # --- public API ----------------------------------------------------------------------------------

    @property
    def summary(self) -> str | None:
        """The last assistant message, at most 4096 characters (the executor session's summary)."""
        if self._last_assistant is None:
            return None
        return self._last_assistant[:SUMMARY_MAX_CHARS]

    @property
    def answered(self) -> bool:
        """Whether the agent produced at least one assistant message."""
        return self._last_assistant is not None

    def feed_stdout(self, chunk: str) -> list[Op]:
        ops: list[Op] = []
        for line in self._lines("stdout", chunk):
            ops += (
                self._approval_line(line)
                if line.startswith(APPROVAL_LINE_PREFIX)
                else self._stdout_or_command(line)
            )
        return ops

    @property
    def line_open(self) -> bool:
        """True while stdout holds an unterminated line (a server line now would split it)."""
        return bool(self._partial["stdout"])

    def has_tool(self, call_id: str) -> bool:
        return call_id in self._tool_index

    def tool_status(self, call_id: str, status: dict[str, Any]) -> list[Op]:
        """Set the status of the tool entry of ``call_id`` (an approval); the entry stays updatable."""
        index = self._tool_index.get(call_id)
        old = self._peek(index) if index is not None else None
        if index is None or old is None:
            return []
        etype = copy.deepcopy(old["entry_type"])
        etype["status"] = status
        new = {**old, "entry_type": etype}
        if not self._keep_all:
            self._pending[index] = new
        return [self._replace(index, new)]

    def add_tool(self, call_id: str, tool_name: str, arguments: Any) -> list[Op]:
        """A tool entry for a call the output has not shown yet (an approval asked before it ran)."""
        if call_id in self._tool_index:
            return []
        args = arguments if isinstance(arguments, dict) else {"input": arguments}
        action = {"action": "tool", "tool_name": tool_name, "arguments": args, "result": None}
        op = self._add(
            entry(tool_use_type(tool_name, action), tool_name, timestamp=self._now()), may_update=True
        )
        self._tool_index[call_id] = self.entry_count - 1
        return [op]

    def _approval_line(self, line: str) -> list[Op]:
        try:
            record = json.loads(line)["anyon_approval"]
            call_id, status = str(record["call_id"]), dict(record["status"])
        except (ValueError, KeyError, TypeError):
            return self._stdout_line(line)
        return self.tool_status(call_id, approval_tool_status(status))

    def _stdout_or_command(self, line: str) -> list[Op]:
        if line.startswith(COMMAND_PREFIX):
            return [self._system(f"Running `{line[len(COMMAND_PREFIX) :]}`")]
        return self._stdout_line(line)

    def feed_stderr(self, chunk: str) -> list[Op]:
        if is_marker(chunk):
            # the log cap omitted output here: unterminated lines end, and the marker is an entry of its own
            return [*self.finish(), self._system(chunk.strip())]
        return [op for line in self._lines("stderr", chunk) for op in self._stderr_or_spawn(line)]

    def _stderr_or_spawn(self, line: str) -> list[Op]:
        if line.startswith(SPAWN_FAILED_PREFIX):
            reason = line[len(SPAWN_FAILED_PREFIX) :]
            return [self._error(reason, "setup_required" if NOT_INSTALLED_WORDS in reason else "other")]
        return self._stderr_line(line)

    def finish(self) -> list[Op]:
        """Process what is left of unterminated lines (the process has exited)."""
        ops: list[Op] = []
        for stream in ("stdout", "stderr"):
            rest, self._partial[stream] = self._partial[stream], ""
            if rest.strip():
                ops += self._stdout_or_command(rest) if stream == "stdout" else self._stderr_or_spawn(rest)
        return ops

    def replay(self, records: Iterable[tuple[str, str]]) -> list[Op]:
        """Normalise a stored log (``("stdout"|"stderr", chunk)`` pairs) in one go: the historic case."""
        ops: list[Op] = []
        for stream, chunk in records:
            if stream == "stdout":
                ops += self.feed_stdout(chunk)
            elif stream == "stderr":
                ops += self.feed_stderr(chunk)
        return ops + self.finish()

    # --- helpers for subclasses ----------------------------------------------------------------------

    def _lines(self, stream: str, chunk: str) -> list[str]:
        data = self._partial[stream] + chunk
        *lines, self._partial[stream] = data.split("\n")
        return [line.rstrip("\r") for line in lines]

    def _now(self) -> str:
        return self._clock()

    def _add(self, value: Entry, *, may_update: bool = False) -> Op:
        index = self.entry_count
        self.entry_count += 1
        if self._keep_all:
            self.entries.append(value)
        elif may_update:
            self._pending[index] = value
        return entry_add(index, normalized_entry_value(value))

    def _entry(self, index: int) -> Entry | None:
        """An entry a later line updates; in live mode it is forgotten once updated (see ``__init__``)."""
        if self._keep_all:
            return self.entries[index] if 0 <= index < len(self.entries) else None
        return self._pending.pop(index, None)

    def _peek(self, index: int) -> Entry | None:
        """The entry at ``index`` if it is still updatable, without forgetting it."""
        if self._keep_all:
            return self.entries[index] if 0 <= index < len(self.entries) else None
        return self._pending.get(index)

    def _replace(self, index: int, value: Entry) -> Op:
        if self._keep_all:
            self.entries[index] = value
        return entry_replace(index, normalized_entry_value(value))

    def _assistant(self, text: str) -> Op:
        self._last_assistant = text
        return self._add(entry(simple_type("assistant_message"), text, timestamp=self._now()))

    def _system(self, text: str) -> Op:
        return self._add(entry(simple_type("system_message"), text, timestamp=self._now()))

    def _error(self, text: str, kind: Literal["setup_required", "other"] = "other") -> Op:
        return self._add(entry(error_type(kind), text, timestamp=self._now()))

    def _diagnosed(self, executor: str, line: str) -> list[Op] | None:
        """An error entry in the user's words when ``line`` reports a known failure (failures.py)."""
        found = diagnose(executor, line)
        if found is None:
            return None
        if self.failure is None:
            self.failure = found
        return [self._error(found.message, "setup_required" if found.setup_required else "other")]

    def _stdout_line(self, line: str) -> list[Op]:
        raise NotImplementedError

    #: the executor whose failures (failures.py) stderr is read for; None reads none
    executor: str | None = None

    def _stderr_line(self, line: str) -> list[Op]:
        if not line.strip():
            return []
        if is_npm_notice(line):  # npm's update and deprecation notices are not the agent failing
            return [self._system(line.strip())]
        diagnosed = self._diagnosed(self.executor, line) if self.executor else None
        return diagnosed or [self._error(line)]


class JsonLinesNormalizer(LogNormalizer):
    """An agent printing one JSON object per line: each object goes to :meth:`_json_line`, any other line
    (npx and Node noise, a crash trace) to :meth:`_other_line`, and the first ``session_key`` value seen is
    the session id follow-ups resume."""

    #: the key of a line's object that names the agent's session; None when the lines carry none
    session_key: str | None = None

    def _stdout_line(self, line: str) -> list[Op]:
        if not line.strip():
            return []
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            return self._other_line(line)
        if not isinstance(msg, dict):
            return self._other_line(line)
        if self.session_key is not None and self.session_id is None:
            sid = msg.get(self.session_key)
            if isinstance(sid, str) and sid:
                self.session_id = sid
        return self._json_line(msg)

    def _json_line(self, msg: dict[str, Any]) -> list[Op]:
        raise NotImplementedError

    def _other_line(self, line: str) -> list[Op]:
        return [self._system(line)]


class PlainTextNormalizer(LogNormalizer):
    """Agents without a parser yet: each non-empty stdout line is an assistant message."""

    def __init__(
        self, *, executor: str | None = None, clock: Clock | None = None, keep_entries: bool = True
    ) -> None:
        super().__init__(clock=clock, keep_entries=keep_entries)
        self.executor = executor

    def _stdout_line(self, line: str) -> list[Op]:
        if not line.strip():
            return []
        return [self._assistant(line)]
