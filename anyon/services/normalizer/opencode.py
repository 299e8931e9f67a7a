"""OpenCode's ``run --print-logs --format json`` output.

stdout carries one JSON event per line, each with the ``sessionID``:

* ``text`` → ``part.text`` is an ``assistant_message``; ``reasoning`` → ``thinking``;
* ``tool_use`` → ``part.tool`` with ``part.state{status,input,output,error}``: a ``tool_use`` entry, replaced
  when the same ``part.callID`` reports again (``completed`` → success, ``error`` → failed);
* ``error`` → ``error.data.message`` (or ``error.name``) as an error entry;
* ``step_start``/``step_finish`` carry nothing to show.

stderr carries OpenCode's own log (``timestamp=… level=INFO … message=…``). Its routine lines are not shown;
``level=ERROR`` lines are. A model call that cannot connect is retried by OpenCode without end, so a
``stream error`` that failures.py reads as "no network" ends the run at once (the engine stops it).
"""

from __future__ import annotations

import json
import re
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
from anyon.services.normalizer.failures import is_npm_notice
from anyon.services.normalizer.text import strip_ansi

_FIELD = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(line: str) -> dict[str, str]:
    """``a=1 b="x y"`` → ``{"a": "1", "b": "x y"}`` (OpenCode's log lines)."""
    out: dict[str, str] = {}
    for key, value in _FIELD.findall(line):
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value.strip('"')
        out[key] = str(value)
    return out


class OpenCodeNormalizer(JsonLinesNormalizer):
    session_key = "sessionID"

    def __init__(self, *, clock: Clock | None = None, keep_entries: bool = True) -> None:
        super().__init__(clock=clock, keep_entries=keep_entries)
        self.requires_answer = True
        self._calls: dict[str, int] = {}

    def _json_line(self, msg: dict[str, Any]) -> list[Op]:
        raw_part = msg.get("part")
        part: Mapping[str, Any] = raw_part if isinstance(raw_part, Mapping) else {}
        kind = msg.get("type")
        if kind == "text":
            text = str(part.get("text") or "").strip()
            return [self._assistant(text)] if text else []
        if kind == "reasoning":
            text = str(part.get("text") or "").strip()
            return [self._add(entry(simple_type("thinking"), text, timestamp=self._now()))] if text else []
        if kind == "tool_use":
            return self._on_tool(part)
        if kind == "error":
            return self._on_error(msg.get("error"))
        return []

    def _on_error(self, error: Any) -> list[Op]:
        if isinstance(error, Mapping):
            data = _mapping(error.get("data"))
            text = str(data.get("message") or error.get("message") or error.get("name") or "error")
        else:
            text = str(error)
        return self._diagnosed("OPENCODE", text) or [self._error(text)]

    def _on_tool(self, part: Mapping[str, Any]) -> list[Op]:
        name = str(part.get("tool") or "tool")
        state = _mapping(part.get("state"))
        args = _mapping(state.get("input"))
        action, content = _action_for(name, args)
        status = {"completed": "success", "error": "failed"}.get(str(state.get("status")), "created")
        if status != "created" and action.get("action") == "command_run":
            output = state.get("output") if status == "success" else state.get("error")
            action["result"] = {"exit_status": None, "output": str(output or "") or None}
        value = entry(tool_use_type(name, action, status), content, timestamp=self._now())
        call_id = part.get("callID") or part.get("id")
        if isinstance(call_id, str) and call_id in self._calls:
            if status == "created":  # still running: the input may have grown
                return [self._replace(self._calls[call_id], value)]
            index = self._calls.pop(call_id)
            self._entry(index)  # forget the pending copy (live mode)
            return [self._replace(index, value)]
        op = self._add(value, may_update=status == "created")
        if isinstance(call_id, str) and status == "created":
            self._calls[call_id] = self.entry_count - 1
        return [op]

    def _stderr_line(self, line: str) -> list[Op]:
        text = strip_ansi(line).strip()
        if not text:
            return []
        if text.startswith("timestamp=") or " level=" in text:
            fields = logfmt(text)
            sid = fields.get("session.id")
            if sid and self.session_id is None:
                self.session_id = sid
            if fields.get("level") != "ERROR":
                return []
            detail = fields.get("error.error") or fields.get("cause") or fields.get("message", text)
            if fields.get("message") == "stream error":
                return self._diagnosed("OPENCODE", detail) or [self._error(detail)]
            return [self._system(f"{fields.get('message', 'error')}: {detail}")]
        return self._other_line(text)

    def _other_line(self, line: str) -> list[Op]:
        text = strip_ansi(line).strip()
        if not text:
            return []
        if is_npm_notice(text) or text.startswith(">"):
            return [self._system(text)]
        return self._diagnosed("OPENCODE", text) or [self._error(text)]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _action_for(name: str, a: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    path = str(a.get("filePath") or a.get("path") or "")
    if name == "read":
        return {"action": "file_read", "path": path}, path
    if name in ("edit", "write", "patch", "multiedit"):
        return {"action": "file_edit", "path": path, "changes": []}, path
    if name == "bash":
        command = str(a.get("command", ""))
        return {"action": "command_run", "command": command, "result": None}, command
    if name in ("grep", "glob", "codesearch", "websearch"):
        query = str(a.get("pattern") or a.get("query") or "")
        return {"action": "search", "query": query}, query
    if name == "webfetch":
        url = str(a.get("url", ""))
        return {"action": "web_fetch", "url": url}, url
    if name == "task":
        description = str(a.get("description") or a.get("prompt") or "")
        return {"action": "task_create", "description": description}, description
    if name in ("todowrite", "todoread"):
        todos = [
            {"content": str(t.get("content", "")), "status": str(t.get("status", "")), "priority": None}
            for t in (a.get("todos") or [])
            if isinstance(t, Mapping)
        ]
        return {"action": "todo_management", "todos": todos, "operation": "write"}, "TODO list updated"
    return {"action": "tool", "tool_name": name, "arguments": dict(a), "result": None}, name
