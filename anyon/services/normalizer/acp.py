"""Normaliser for agents speaking ACP (the Agent Client Protocol: Gemini CLI, Qwen Code) over stdout.

Lines are JSON-RPC 2.0 messages from the agent. What becomes an entry:

* the response to ``session/new`` → the session id (``result.sessionId``);
* ``session/update`` notifications: ``agent_message_chunk`` → one ``assistant_message`` that grows with
  each chunk (``replace``), ``agent_thought_chunk`` → ``thinking`` likewise, ``tool_call`` → a ``tool_use``
  entry whose action follows the call's ``kind``, ``tool_call_update`` → its status (``completed`` →
  success, ``failed`` → failed), ``plan`` → ``todo_management``;
* JSON-RPC errors → ``error_message``.

While the client reloads a session (``session/load``), the agent replays the old conversation as updates:
the client writes ``{"anyon_replay": true}`` before and ``{"anyon_replay": false}`` after into the stored
log (:func:`replay_line`), which set :attr:`replaying` and so mute them, live and in later reads alike: a
follow-up shows only what is new. Lines that are not JSON are system
entries (npm notices, the CLI's own warnings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from anyon.services.logs.jsonpatch import Op
from anyon.services.normalizer.entries import (
    Clock,
    Entry,
    JsonLinesNormalizer,
    entry,
    tool_use_type,
)
from anyon.services.normalizer.failures import agent_name

REPLAY_KEY = "anyon_replay"


def replay_line(on: bool) -> str:
    """The server line that starts (``on``) or ends the replay of a reloaded session."""
    return json.dumps({REPLAY_KEY: on}) + "\n"


class AcpNormalizer(JsonLinesNormalizer):
    """ACP JSON-RPC → NormalizedEntry patches; see the module docstring."""

    def __init__(
        self,
        *,
        executor: str = "GEMINI",
        worktree: str | None = None,
        clock: Clock | None = None,
        keep_entries: bool = True,
    ) -> None:
        super().__init__(clock=clock, keep_entries=keep_entries)
        self.executor = executor  # its stderr is read for the failures of failures.py
        self.agent = agent_name(executor)
        self.worktree = worktree
        #: set by the protocol client while ``session/load`` replays the old conversation
        self.replaying = False
        # the message being streamed: (kind, entry index, text so far)
        self._stream: tuple[str, int, str] | None = None

    def _json_line(self, msg: dict[str, Any]) -> list[Op]:
        if REPLAY_KEY in msg:
            self.replaying = bool(msg[REPLAY_KEY])
            return []
        method = msg.get("method")
        if method == "session/update" and "id" not in msg:
            params = msg.get("params")
            update = params.get("update") if isinstance(params, Mapping) else None
            if self.replaying or not isinstance(update, Mapping):
                return []
            return self._on_update(update)
        if isinstance(method, str):
            return []  # a request of the agent (the client answers it) or another notification
        if isinstance(msg.get("error"), Mapping):
            self._stream = None
            return [self._error(f"{self.agent}: {msg['error'].get('message') or 'request failed'}")]
        result = msg.get("result")
        if isinstance(result, Mapping) and self.session_id is None:
            session = result.get("sessionId")
            if isinstance(session, str) and session:
                self.session_id = session
        return []

    def _on_update(self, update: Mapping[str, Any]) -> list[Op]:
        kind = update.get("sessionUpdate")
        if kind in ("agent_message_chunk", "agent_thought_chunk"):
            content = update.get("content")
            text = content.get("text") if isinstance(content, Mapping) else None
            return self._chunk("assistant_message" if kind == "agent_message_chunk" else "thinking", text)
        if kind == "user_message_chunk":
            return []
        self._stream = None
        if kind == "tool_call":
            return self._tool_call(update)
        if kind == "tool_call_update":
            return self._tool_update(update)
        if kind == "plan":
            todos = [
                {
                    "content": str(e.get("content", "")),
                    "status": str(e.get("status", "pending")),
                    "priority": e.get("priority") if isinstance(e.get("priority"), str) else None,
                }
                for e in (update.get("entries") or [])
                if isinstance(e, Mapping)
            ]
            action = {"action": "todo_management", "todos": todos, "operation": "write"}
            return [self._add(entry(tool_use_type("plan", action, "success"), "Plan", timestamp=self._now()))]
        return []

    def _chunk(self, kind: str, text: Any) -> list[Op]:
        if not isinstance(text, str) or not text:
            return []
        if self._stream is not None and self._stream[0] == kind:
            _, index, so_far = self._stream
            so_far += text
            self._stream = (kind, index, so_far)
            if kind == "assistant_message":
                self._last_assistant = so_far
            new: Entry = entry({"type": kind}, so_far, timestamp=self._now())
            if not self._keep_all:
                self._pending[index] = new
            return [self._replace(index, new)]
        op = self._add(entry({"type": kind}, text, timestamp=self._now()), may_update=True)
        self._stream = (kind, self.entry_count - 1, text)
        if kind == "assistant_message":
            self._last_assistant = text
        return [op]

    # --- tools ---------------------------------------------------------------------------------------

    def _tool_call(self, update: Mapping[str, Any]) -> list[Op]:
        call_id = update.get("toolCallId")
        title = str(update.get("title") or update.get("kind") or "tool")
        action, content = _action(update, title)
        status = _status(update.get("status")) or "created"
        value = entry(tool_use_type(title, action, status), content, timestamp=self._now())
        if isinstance(call_id, str) and call_id in self._tool_index:  # announced by a permission request
            index = self._tool_index[call_id]
            old = self._peek(index)
            if old is not None:
                value["entry_type"]["status"] = old["entry_type"]["status"]
                if not self._keep_all:
                    self._pending[index] = value
                return [self._replace(index, value)]
        waits = isinstance(call_id, str) and status not in ("success", "failed")
        op = self._add(value, may_update=waits)
        if waits:
            self._tool_index[str(call_id)] = self.entry_count - 1
        return [op]

    def _tool_update(self, update: Mapping[str, Any]) -> list[Op]:
        call_id = update.get("toolCallId")
        status = _status(update.get("status"))
        if not isinstance(call_id, str) or status not in ("success", "failed"):
            return []
        index = self._tool_index.pop(call_id, None)
        old = self._entry(index) if index is not None else None
        if index is None or old is None:
            return []
        etype = json.loads(json.dumps(old["entry_type"]))
        if etype.get("status", {}).get("status") not in ("denied", "timed_out"):
            etype["status"] = {"status": status}
        output = _content_text(update.get("content"))
        if output and etype["action_type"].get("action") == "command_run":
            etype["action_type"]["result"] = {"exit_status": None, "output": output}
        return [self._replace(index, {**old, "entry_type": etype})]


def _status(value: Any) -> str | None:
    return {"completed": "success", "failed": "failed", "pending": "created", "in_progress": "created"}.get(
        str(value)
    )


def _action(update: Mapping[str, Any], title: str) -> tuple[dict[str, Any], str]:
    kind = update.get("kind")
    locations = update.get("locations")
    path = ""
    if isinstance(locations, list) and locations and isinstance(locations[0], Mapping):
        path = str(locations[0].get("path") or "")
    if kind == "read":
        return {"action": "file_read", "path": path or title}, path or title
    if kind in ("edit", "delete", "move"):
        return {"action": "file_edit", "path": path or title, "changes": []}, path or title
    if kind == "execute":
        return {"action": "command_run", "command": title, "result": None}, title
    if kind == "search":
        return {"action": "search", "query": title}, title
    if kind == "fetch":
        return {"action": "web_fetch", "url": title}, title
    raw = update.get("rawInput")
    arguments = dict(raw) if isinstance(raw, Mapping) else None
    return {"action": "tool", "tool_name": title, "arguments": arguments, "result": None}, title


def _content_text(content: Any) -> str:
    """Text of a tool call's ``content`` list (``{"type":"content","content":{"type":"text","text"}}``)."""
    if not isinstance(content, list):
        return ""
    parts = []
    for item in content:
        inner = item.get("content") if isinstance(item, Mapping) else None
        if isinstance(inner, Mapping) and isinstance(inner.get("text"), str):
            parts.append(inner["text"])
    return "\n".join(parts)
