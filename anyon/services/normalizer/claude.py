"""Normaliser for Claude Code's ``--output-format=stream-json`` output (one JSON object per line).

Line types handled (the documented stream-json shapes):

* ``{"type":"system","subtype":"init","session_id",…,"model"}`` → the session id, and a system entry;
* ``{"type":"assistant","message":{"content":[…]}}`` → ``text`` blocks become ``assistant_message``,
  ``thinking`` blocks ``thinking``, ``tool_use`` blocks ``tool_use`` entries with an action type (spec §2.6)
  and status ``created``;
* ``{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id",…,"is_error"}]}}`` → the
  matching tool entry is *replaced* with status ``success``/``failed`` (and, for commands and generic tools,
  the result); plain user text becomes ``user_message`` (the UI drops those and shows the prompt itself);
* ``{"type":"result",…}`` → the session id again; an error result becomes an ``error_message``; a success
  result text is the final answer and so the summary.

``stream_event`` lines (partial-message deltas from ``--include-partial-messages``) and control-protocol lines
are skipped: the complete assistant message that follows carries the same content. Lines that are not JSON
(``npx`` notices, Node warnings) are not model output, so they become ``system_message`` entries.
"""

from __future__ import annotations

import difflib
import json
import os
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

_EXIT_CODE = re.compile(r"[Ee]xit code[: ]+(-?\d+)")
#: A tool the user denied (or whose approval timed out) keeps saying so when the agent reports the refusal.
_KEPT_STATUSES = ("denied", "timed_out")


class ClaudeStreamJsonNormalizer(JsonLinesNormalizer):
    """Claude Code stream-json → NormalizedEntry patches; see the module docstring for the mapping."""

    session_key = "session_id"

    def __init__(
        self, *, worktree: str | None = None, clock: Clock | None = None, keep_entries: bool = True
    ) -> None:
        super().__init__(clock=clock, keep_entries=keep_entries)
        self.executor = "CLAUDE_CODE"
        self.worktree = os.path.abspath(worktree) if worktree else None
        self.model: str | None = None

    # --- line dispatch -------------------------------------------------------------------------------

    def _json_line(self, msg: dict[str, Any]) -> list[Op]:
        kind = msg.get("type")
        if kind == "system":
            return self._on_system(msg)
        if kind == "assistant":
            return self._on_assistant(msg)
        if kind == "user":
            return self._on_user(msg)
        if kind == "result":
            return self._on_result(msg)
        return []  # stream_event, control protocol, and future line types carry nothing new to show

    def _other_line(self, line: str) -> list[Op]:
        """A line that is not stream-json (npx, Node): a known failure in words, else a system line."""
        return self._diagnosed(self.executor or "CLAUDE_CODE", line) or [self._system(line)]

    def _on_system(self, msg: Mapping[str, Any]) -> list[Op]:
        if msg.get("subtype") != "init":
            return []
        self.model = msg.get("model") if isinstance(msg.get("model"), str) else None
        text = f"System initialized with model: {self.model}" if self.model else "System initialized"
        return [self._system(text)]

    def _on_assistant(self, msg: Mapping[str, Any]) -> list[Op]:
        ops: list[Op] = []
        for block in _content_blocks(msg):
            btype = block.get("type")
            if btype == "text":
                text = str(block.get("text", ""))
                if text.strip():
                    ops.append(self._assistant(text))
            elif btype == "thinking":
                text = str(block.get("thinking", ""))
                if text.strip():
                    ops.append(self._add(entry(simple_type("thinking"), text, timestamp=self._now())))
            elif btype == "tool_use":
                ops.append(self._tool_use(block))
        return ops

    def _on_user(self, msg: Mapping[str, Any]) -> list[Op]:
        message = msg.get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            if content.strip():
                return [self._add(entry(simple_type("user_message"), content, timestamp=self._now()))]
            return []
        ops: list[Op] = []
        for block in _content_blocks(msg):
            if block.get("type") == "tool_result":
                op = self._tool_result(block)
                if op is not None:
                    ops.append(op)
            elif block.get("type") == "text" and str(block.get("text", "")).strip():
                ops.append(
                    self._add(entry(simple_type("user_message"), str(block["text"]), timestamp=self._now()))
                )
        return ops

    def _on_result(self, msg: Mapping[str, Any]) -> list[Op]:
        result = msg.get("result")
        text = result if isinstance(result, str) else ""
        failed = bool(msg.get("is_error")) or (msg.get("subtype") not in (None, "success"))
        if failed:
            detail = text or str(msg.get("subtype") or "error")
            return self._diagnosed(self.executor or "CLAUDE_CODE", detail) or [self._error(detail)]
        if text.strip():
            self._last_assistant = text
        return []

    # --- tools ---------------------------------------------------------------------------------------

    def _tool_use(self, block: Mapping[str, Any]) -> Op:
        name = str(block.get("name") or "unknown")
        raw_input = block.get("input")
        args: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
        action, content = self._action_for(name, args)
        tool_id = block.get("id")
        waits = isinstance(tool_id, str)
        op = self._add(entry(tool_use_type(name, action), content, timestamp=self._now()), may_update=waits)
        if waits:
            self._tool_index[str(tool_id)] = self.entry_count - 1
        return op

    def _tool_result(self, block: Mapping[str, Any]) -> Op | None:
        tool_id = block.get("tool_use_id")
        index = self._tool_index.pop(tool_id, None) if isinstance(tool_id, str) else None
        old = self._entry(index) if index is not None else None
        if index is None or old is None:
            return None
        is_error = bool(block.get("is_error"))
        output = _result_text(block.get("content"))
        etype = json.loads(json.dumps(old["entry_type"]))  # a fresh copy: entries already sent stay unchanged
        if etype.get("status", {}).get("status") not in _KEPT_STATUSES:
            etype["status"] = {"status": "failed" if is_error else "success"}
        action = etype["action_type"]
        if action.get("action") == "command_run":
            match = _EXIT_CODE.search(output) if is_error else None
            exit_status = (
                {"type": "exit_code", "code": int(match.group(1))}
                if match
                else {"type": "success", "success": not is_error}
            )
            action["result"] = {"exit_status": exit_status, "output": output}
        elif action.get("action") == "tool":
            action["result"] = {"type": {"type": "markdown"}, "value": output}
        return self._replace(index, {**old, "entry_type": etype})

    def _rel(self, path: Any) -> str:
        text = str(path or "")
        if self.worktree and os.path.isabs(text):
            try:
                rel = os.path.relpath(text, self.worktree)
            except ValueError:
                return text
            if not rel.startswith(".."):
                return rel
        return text

    def _action_for(self, name: str, a: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """(action_type, display content) for one tool call."""
        if name == "Read":
            path = self._rel(a.get("file_path"))
            return {"action": "file_read", "path": path}, path
        if name in ("Edit", "MultiEdit"):
            path = self._rel(a.get("file_path"))
            edits = a.get("edits") if name == "MultiEdit" else [a]
            changes = [
                {"action": "edit", "unified_diff": _unified_diff(path, e), "has_line_numbers": False}
                for e in (edits if isinstance(edits, list) else [])
                if isinstance(e, Mapping)
            ]
            return {"action": "file_edit", "path": path, "changes": changes}, path
        if name == "Write":
            path = self._rel(a.get("file_path"))
            changes = [{"action": "write", "content": str(a.get("content", ""))}]
            return {"action": "file_edit", "path": path, "changes": changes}, path
        if name == "NotebookEdit":
            path = self._rel(a.get("notebook_path"))
            changes = [{"action": "write", "content": str(a.get("new_source", ""))}]
            return {"action": "file_edit", "path": path, "changes": changes}, path
        if name == "Bash":
            command = str(a.get("command", ""))
            return {"action": "command_run", "command": command, "result": None}, command
        if name in ("Grep", "Glob"):
            query = str(a.get("pattern", ""))
            return {"action": "search", "query": query}, query
        if name == "WebSearch":
            query = str(a.get("query", ""))
            return {"action": "search", "query": query}, query
        if name == "WebFetch":
            url = str(a.get("url", ""))
            return {"action": "web_fetch", "url": url}, url
        if name == "LS":
            path = self._rel(a.get("path"))
            return {"action": "other", "description": f"List {path}"}, path
        if name == "TodoWrite":
            todos = [
                {
                    "content": str(t.get("content", "")),
                    "status": str(t.get("status", "pending")),
                    "priority": t.get("priority") if isinstance(t.get("priority"), str) else None,
                }
                for t in (a.get("todos") or [])
                if isinstance(t, Mapping)
            ]
            return {"action": "todo_management", "todos": todos, "operation": "write"}, "TODO list updated"
        if name == "Task":
            description = str(a.get("description") or a.get("prompt") or "")
            return {"action": "task_create", "description": description}, description
        if name == "ExitPlanMode":
            plan = str(a.get("plan", ""))
            return {"action": "plan_presentation", "plan": plan}, plan
        if name.startswith("mcp__"):
            parts = name.split("__")
            label = f"mcp: {parts[1]}:{'__'.join(parts[2:])}" if len(parts) >= 3 else name
            return {"action": "tool", "tool_name": name, "arguments": dict(a), "result": None}, label
        return {"action": "tool", "tool_name": name, "arguments": dict(a), "result": None}, name


def _content_blocks(msg: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    message = msg.get("message")
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, Mapping)]


def _result_text(content: Any) -> str:
    """A tool_result's content: a string, or a list of ``{"type":"text","text":…}`` blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(b.get("text", "")) for b in content if isinstance(b, Mapping) and b.get("type") == "text"
        ]
        return "\n".join(parts)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _unified_diff(path: str, edit: Mapping[str, Any]) -> str:
    old = str(edit.get("old_string", ""))
    new = str(edit.get("new_string", ""))
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
