"""Cursor Agent's ``-p --output-format=stream-json`` output (one JSON object per line).

The shapes, as the reference reads them:

* ``{"type":"system","subtype":"init","session_id","model"}`` → the session id and a system line naming the
  model;
* ``{"type":"assistant","message":{"content":[{"type":"text","text"}]}}`` → streamed *pieces* of one answer:
  consecutive pieces are joined into one ``assistant_message`` that grows in place (``replace``);
* ``{"type":"tool_call","subtype":"started"|"completed","call_id","tool_call":{"<kind>ToolCall":{"args",
  "result"}}}`` → a ``tool_use`` entry, replaced with status success (and a shell command's output) when it
  completes;
* ``{"type":"result","is_error"}`` → an error entry when it failed.

Cursor prints its own errors on stdout as text ("Press any key to sign in..." when not signed in): those
lines are read by failures.py, or shown as error entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from anyon.services.logs.jsonpatch import Op
from anyon.services.normalizer.entries import (
    Clock,
    JsonLinesNormalizer,
    entry,
    simple_type,
    tool_use_type,
)
from anyon.services.normalizer.failures import Diagnosis, is_npm_notice
from anyon.services.normalizer.text import strip_ansi

_SIGN_IN = "Press any key to sign in"
_KINDS = {
    "shellToolCall": "shell",
    "readToolCall": "read",
    "writeToolCall": "write",
    "editToolCall": "edit",
    "deleteToolCall": "delete",
    "lsToolCall": "ls",
    "globToolCall": "glob",
    "grepToolCall": "grep",
    "updateTodosToolCall": "todo",
    "mcpToolCall": "mcp",
}


class CursorNormalizer(JsonLinesNormalizer):
    session_key = "session_id"

    def __init__(
        self, *, worktree: str | None = None, clock: Clock | None = None, keep_entries: bool = True
    ) -> None:
        super().__init__(clock=clock, keep_entries=keep_entries)
        self.requires_answer = True
        self.worktree = os.path.abspath(worktree) if worktree else None
        self._answer: str | None = None
        self._answer_index: int | None = None
        self._calls: dict[str, int] = {}
        self._model_shown = False

    def _json_line(self, msg: dict[str, Any]) -> list[Op]:
        kind = msg.get("type")
        if kind != "assistant":
            self._answer, self._answer_index = None, None
        if kind == "system":
            model = msg.get("model")
            if isinstance(model, str) and model and not self._model_shown:
                self._model_shown = True
                return [self._system(f"System initialized with model: {model}")]
            return []
        if kind == "assistant":
            return self._on_assistant(msg)
        if kind == "tool_call":
            return self._on_tool_call(msg)
        if kind == "result":
            if msg.get("is_error") or msg.get("subtype") not in (None, "success"):
                detail = msg.get("result") or msg.get("error") or "Cursor Agent reported an error"
                return [self._error(detail if isinstance(detail, str) else json.dumps(detail))]
            return []
        if kind == "user":
            return []
        return [self._system(json.dumps(msg, ensure_ascii=False))]  # a line type this parser does not know

    def _stderr_line(self, line: str) -> list[Op]:
        return self._other_line(line)

    def _other_line(self, line: str) -> list[Op]:
        text = strip_ansi(line).strip()
        if not text:
            return []
        self._answer, self._answer_index = None, None
        if is_npm_notice(text):
            return [self._system(text)]
        if text.startswith(_SIGN_IN):
            found = Diagnosis(
                "login",
                "Cursor Agent is not signed in. Sign in with the agent login of the web UI "
                "(Settings → Agents; `cursor-agent login`), or give the server CURSOR_API_KEY.",
                text,
            )
            self.failure = self.failure or found
            return [self._error(found.message, "setup_required")]
        return self._diagnosed("CURSOR_AGENT", text) or [self._error(text)]

    def _on_assistant(self, msg: Mapping[str, Any]) -> list[Op]:
        message = msg.get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        pieces = [
            str(b.get("text", ""))
            for b in (content if isinstance(content, list) else [])
            if isinstance(b, Mapping) and b.get("type") == "text"
        ]
        chunk = "".join(pieces)
        if not chunk:
            return []
        self._answer = (self._answer or "") + chunk
        self._last_assistant = self._answer
        value = entry(simple_type("assistant_message"), self._answer, timestamp=self._now())
        if self._answer_index is None:
            self._answer_index = self.entry_count
            return [self._add(value)]
        return [self._replace(self._answer_index, value)]

    def _on_tool_call(self, msg: Mapping[str, Any]) -> list[Op]:
        call = msg.get("tool_call")
        if not isinstance(call, Mapping) or not call:
            return []
        key, body = next(iter(call.items()))
        body = body if isinstance(body, Mapping) else {}
        raw_args = body.get("args")
        args: Mapping[str, Any] = raw_args if isinstance(raw_args, Mapping) else {}
        name = _KINDS.get(str(key), str(key))
        action, content = self._action_for(name, args)
        call_id = msg.get("call_id")
        subtype = str(msg.get("subtype") or "").lower()
        if subtype == "completed" and isinstance(call_id, str) and call_id in self._calls:
            index = self._calls.pop(call_id)
            self._entry(index)  # forget the pending copy (live mode)
            if action.get("action") == "command_run":
                action["result"] = _shell_result(body.get("result"))
            value = entry(tool_use_type(name, action, "success"), content, timestamp=self._now())
            return [self._replace(index, value)]
        if subtype == "completed":
            return []
        waits = isinstance(call_id, str)
        op = self._add(entry(tool_use_type(name, action), content, timestamp=self._now()), may_update=waits)
        if waits:
            self._calls[str(call_id)] = self.entry_count - 1
        return [op]

    def _rel(self, path: Any) -> str:
        text = str(path or "")
        if self.worktree and os.path.isabs(text):
            rel = os.path.relpath(text, self.worktree)
            if not rel.startswith(".."):
                return rel
        return text

    def _action_for(self, name: str, a: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        if name == "read":
            path = self._rel(a.get("path"))
            return {"action": "file_read", "path": path}, f"`{path}`"
        if name in ("write", "edit", "delete"):
            path = self._rel(a.get("path"))
            return {"action": "file_edit", "path": path, "changes": []}, f"`{path}`"
        if name == "shell":
            command = str(a.get("command", ""))
            return {"action": "command_run", "command": command, "result": None}, f"`{command}`"
        if name in ("grep", "glob"):
            query = str(a.get("pattern") or a.get("globPattern") or "*")
            return {"action": "search", "query": query}, f"`{query}`"
        if name == "ls":
            path = self._rel(a.get("path"))
            return {"action": "other", "description": "List directory"}, f"List directory: `{path}`"
        if name == "todo":
            todos = [
                {"content": str(t.get("content", "")), "status": str(t.get("status", "")), "priority": None}
                for t in (a.get("todos") or [])
                if isinstance(t, Mapping)
            ]
            return {"action": "todo_management", "todos": todos, "operation": "write"}, "TODO list updated"
        label = str(a.get("toolName") or a.get("name") or name)
        return {"action": "tool", "tool_name": label, "arguments": dict(a), "result": None}, label


def _shell_result(result: Any) -> dict[str, Any] | None:
    """A completed shell call's ``{"success"|"failure": {stdout, stderr, exitCode}}`` → CommandRunResult."""
    if not isinstance(result, Mapping):
        return None
    outcome = result.get("success") or result.get("failure")
    if not isinstance(outcome, Mapping):
        return None
    out = str(outcome.get("stdout") or "").strip()
    err = str(outcome.get("stderr") or "").strip()
    output = f"STDOUT:\n{out}\n\nSTDERR:\n{err}" if out and err else (out or err or None)
    code = outcome.get("exitCode")
    status = {"type": "exit_code", "code": code} if isinstance(code, int) else None
    return {"exit_status": status, "output": output}
