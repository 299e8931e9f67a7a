"""Normaliser for ``codex app-server`` output: JSON-RPC lines (responses, server requests, notifications).

What becomes an entry:

* the response to ``newConversation``/``resumeConversation`` → the session id (the conversation's rollout
  path when Codex names one, which is what ``resumeConversation`` takes back; else the conversation id);
* ``codex/event/session_configured`` → a system entry naming the model (and the session id if still unknown);
* ``codex/event/agent_message`` → ``assistant_message``; ``agent_reasoning`` → ``thinking``;
* ``exec_command_begin``/``_end`` → a ``command_run`` tool entry and its result;
  ``patch_apply_begin``/``_end`` → ``file_edit`` entries; ``mcp_tool_call_begin``/``_end`` → ``tool`` entries;
* ``codex/event/error`` and ``stream_error``, and JSON-RPC error responses → ``error_message``;
* ``task_complete`` → its ``last_agent_message`` is the summary when nothing else was said.

Deltas, token counts and the like carry nothing new. Lines that are not JSON (npm notices) are system entries.
"""

from __future__ import annotations

import json
import shlex
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

EXEC_TOOL = "exec_command"
PATCH_TOOL = "apply_patch"


class CodexAppServerNormalizer(JsonLinesNormalizer):
    """Codex app-server JSON-RPC → NormalizedEntry patches; see the module docstring."""

    def __init__(
        self, *, worktree: str | None = None, clock: Clock | None = None, keep_entries: bool = True
    ) -> None:
        super().__init__(clock=clock, keep_entries=keep_entries)
        self.executor = "CODEX"  # its stderr is read for the failures of failures.py
        self.worktree = worktree
        self.model: str | None = None

    def _json_line(self, msg: dict[str, Any]) -> list[Op]:
        method = msg.get("method")
        if isinstance(method, str):
            params = msg.get("params")
            if "id" in msg or not method.startswith("codex/event/") or not isinstance(params, Mapping):
                return []  # a server request (the client answers it) or a notification without content
            event = params.get("msg")
            return self._on_event(event) if isinstance(event, Mapping) else []
        if isinstance(msg.get("error"), Mapping):
            return [self._error(f"Codex: {msg['error'].get('message') or 'request failed'}")]
        result = msg.get("result")
        if isinstance(result, Mapping) and self.session_id is None:
            session = result.get("rolloutPath") or result.get("conversationId")
            if isinstance(session, str) and session:
                self.session_id = session
        return []

    def _on_event(self, event: Mapping[str, Any]) -> list[Op]:
        kind = event.get("type")
        if kind == "session_configured":
            self.model = event.get("model") if isinstance(event.get("model"), str) else None
            session = event.get("rollout_path") or event.get("session_id")
            if self.session_id is None and isinstance(session, str) and session:
                self.session_id = session
            text = f"System initialized with model: {self.model}" if self.model else "System initialized"
            return [self._system(text)]
        if kind == "agent_message":
            text = str(event.get("message") or "")
            return [self._assistant(text)] if text.strip() else []
        if kind == "agent_reasoning":
            text = str(event.get("text") or "")
            return (
                [self._add(entry(simple_type("thinking"), text, timestamp=self._now()))]
                if text.strip()
                else []
            )
        if kind in ("error", "stream_error"):
            return [self._error(str(event.get("message") or kind))]
        if kind == "task_complete":
            last = event.get("last_agent_message")
            if isinstance(last, str) and last.strip() and self._last_assistant is None:
                self._last_assistant = last
            return []
        call_id = event.get("call_id")
        if not isinstance(call_id, str):
            return []
        if kind == "exec_command_begin":
            return self._begin(call_id, EXEC_TOOL, _exec_action(event.get("command")))
        if kind == "exec_command_end":
            code = event.get("exit_code")
            output = event.get("aggregated_output")
            if not isinstance(output, str):
                output = str(event.get("stdout") or "") + str(event.get("stderr") or "")
            exit_status = (
                {"type": "exit_code", "code": code}
                if isinstance(code, int)
                else {"type": "success", "success": False}
            )
            result = {"exit_status": exit_status, "output": output}
            return self._end(call_id, code == 0, result)
        if kind == "patch_apply_begin":
            return self._begin(call_id, PATCH_TOOL, _patch_action(event.get("changes")))
        if kind == "patch_apply_end":
            return self._end(call_id, bool(event.get("success")), None)
        if kind == "mcp_tool_call_begin":
            raw = event.get("invocation")
            invocation: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            name = f"mcp:{invocation.get('server', '')}:{invocation.get('tool', '')}"
            args = invocation.get("arguments")
            action = {"action": "tool", "tool_name": name, "arguments": args, "result": None}
            return self._begin(call_id, name, (action, name))
        if kind == "mcp_tool_call_end":
            outcome = event.get("result")
            failed = isinstance(outcome, Mapping) and "Err" in outcome
            return self._end(call_id, not failed, None)
        return []

    # --- tools ---------------------------------------------------------------------------------------

    def add_tool(self, call_id: str, tool_name: str, arguments: Any) -> list[Op]:
        """An approval asked before the call began: the entry it will update, with its real action."""
        if call_id in self._tool_index:
            return []
        args = arguments if isinstance(arguments, Mapping) else {}
        if tool_name == EXEC_TOOL:
            action, content = _exec_action(args.get("command"))
        elif tool_name == PATCH_TOOL:
            action, content = _patch_action(args.get("fileChanges") or args.get("changes"))
        else:
            return super().add_tool(call_id, tool_name, arguments)
        op = self._add(
            entry(tool_use_type(tool_name, action), content, timestamp=self._now()), may_update=True
        )
        self._tool_index[call_id] = self.entry_count - 1
        return [op]

    def _begin(self, call_id: str, name: str, action_content: tuple[dict[str, Any], str]) -> list[Op]:
        action, content = action_content
        index = self._tool_index.get(call_id)
        old = self._peek(index) if index is not None else None
        if index is not None and old is not None:  # asked for approval first: the same entry goes on
            status = old["entry_type"].get("status") or {"status": "created"}
            etype = {**tool_use_type(name, action), "status": status}
            new = {**old, "entry_type": etype, "content": content}
            if not self._keep_all:
                self._pending[index] = new
            return [self._replace(index, new)]
        op = self._add(entry(tool_use_type(name, action), content, timestamp=self._now()), may_update=True)
        self._tool_index[call_id] = self.entry_count - 1
        return [op]

    def _end(self, call_id: str, success: bool, result: dict[str, Any] | None) -> list[Op]:
        index = self._tool_index.pop(call_id, None)
        old = self._entry(index) if index is not None else None
        if index is None or old is None:
            return []
        etype = json.loads(json.dumps(old["entry_type"]))
        if etype.get("status", {}).get("status") not in ("denied", "timed_out"):
            etype["status"] = {"status": "success" if success else "failed"}
        if result is not None and etype["action_type"].get("action") == "command_run":
            etype["action_type"]["result"] = result
        return [self._replace(index, {**old, "entry_type": etype})]


def _exec_action(command: Any) -> tuple[dict[str, Any], str]:
    if isinstance(command, list):
        text = " ".join(shlex.quote(str(part)) for part in command)
        if len(command) == 3 and command[:2] in (["bash", "-lc"], ["sh", "-c"], ["bash", "-c"]):
            text = str(command[2])
    else:
        text = str(command or "")
    return {"action": "command_run", "command": text, "result": None}, text


def _patch_action(changes: Any) -> tuple[dict[str, Any], str]:
    paths = [str(path) for path in changes] if isinstance(changes, Mapping) else []
    first = paths[0] if paths else ""
    edits: list[dict[str, Any]] = []
    if isinstance(changes, Mapping) and first:
        change = changes[first]
        if isinstance(change, Mapping):
            if isinstance(change.get("add"), Mapping):
                edits.append({"action": "write", "content": str(change["add"].get("content", ""))})
            elif isinstance(change.get("update"), Mapping):
                diff = str(change["update"].get("unified_diff", ""))
                edits.append({"action": "edit", "unified_diff": diff, "has_line_numbers": False})
            elif "delete" in change:
                edits.append({"action": "delete"})
    content = first if len(paths) <= 1 else f"{first} (+{len(paths) - 1} more)"
    return {"action": "file_edit", "path": first, "changes": edits}, content
