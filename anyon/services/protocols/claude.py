"""Claude Code's stream-json control protocol (``--input-format=stream-json --output-format=stream-json``).

Both directions are JSON lines. We write ``control_request`` messages (``initialize`` with the
PreToolUse hooks, ``set_permission_mode``, ``interrupt``) and ``user`` messages; the CLI writes its
conversation (read by :class:`~anyon.services.normalizer.ClaudeStreamJsonNormalizer`) and its own
``control_request`` messages, which we answer with ``control_response``:

* ``hook_callback`` — our hooks route a tool to the permission prompt (``ask``) or let it pass (``allow``);
* ``can_use_tool`` — (with ``--permission-prompt-tool=stdio``) may this tool run? Answered by the user
  through the approvals service: ``{"behavior":"allow","updatedInput"}`` or ``{"behavior":"deny","message"}``.
  A ``control_cancel_request`` naming it withdraws the question: the approval ends (denied, saying so) and
  no answer is sent.

Variants (types.md §5): DEFAULT bypasses permissions, so nothing is asked: the prompt is written and stdin
closed, as a one-shot ``-p`` run. APPROVALS starts in the ``default`` mode with every tool but the read-only
ones routed to the user. PLAN starts in ``plan`` mode with only ``ExitPlanMode`` routed to the user; its
approval switches the same process to ``bypassPermissions`` (the permission update in the answer, and a
``set_permission_mode`` request), so the agent carries out the plan without asking again.

The turn ends with a ``result`` line: stdin is then closed and the CLI exits.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from anyon.services.agents.approvals import ApprovalService, ApprovalStatus
from anyon.services.normalizer.entries import LogNormalizer
from anyon.services.protocols.base import AgentClient, RunRequest

EXIT_PLAN_MODE = "ExitPlanMode"
#: Hook callback ids (ours): route the tool to ``can_use_tool``, or let it run.
ASK_CALLBACK = "anyon_ask_user"
ALLOW_CALLBACK = "anyon_allow"
#: Tools that only read: never worth a question in the APPROVALS variant.
READ_ONLY_TOOLS = ("Glob", "Grep", "LS", "NotebookRead", "Read", "Task", "TodoWrite")
_INTERRUPT_WAIT_SECONDS = 1.0


def control_request(request: dict[str, Any]) -> dict[str, Any]:
    return {"type": "control_request", "request_id": str(uuid.uuid4()), "request": request}


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user", "message": {"role": "user", "content": text}}


def _line(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, ensure_ascii=False) + "\n").encode()


class ClaudeControlClient(AgentClient):
    """One Claude Code run over the control protocol (see the module docstring)."""

    def __init__(self, run: RunRequest, normalizer: LogNormalizer, approvals: ApprovalService | None) -> None:
        super().__init__(run, normalizer, approvals)
        self.plan = bool(run.options.get("plan"))
        self.asks = (self.plan or bool(run.options.get("approvals"))) and approvals is not None
        self.interactive = self.asks
        self.result_error: str | None = None
        self.mode = self.permission_mode()

    def permission_mode(self) -> str:
        if not self.asks:
            return "bypassPermissions"
        return "plan" if self.plan else "default"

    def hooks(self) -> dict[str, Any]:
        if self.plan:
            pre_tool_use = [
                {"matcher": f"^{EXIT_PLAN_MODE}$", "hookCallbackIds": [ASK_CALLBACK]},
                {"matcher": f"^(?!{EXIT_PLAN_MODE}$).*", "hookCallbackIds": [ALLOW_CALLBACK]},
            ]
        else:
            read_only = "|".join(READ_ONLY_TOOLS)
            pre_tool_use = [{"matcher": f"^(?!({read_only})$).*", "hookCallbackIds": [ASK_CALLBACK]}]
        return {"PreToolUse": pre_tool_use}

    # --- opening ------------------------------------------------------------------------------------

    def initial_input(self) -> bytes:
        if not self.asks:
            return _line(user_message(self.run.prompt))
        return b"".join(
            _line(message)
            for message in (
                control_request({"subtype": "initialize", "hooks": self.hooks()}),
                control_request({"subtype": "set_permission_mode", "mode": self.mode}),
                user_message(self.run.prompt),
            )
        )

    # --- the agent's messages -----------------------------------------------------------------------

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "control_request":
            self._on_control_request(message)
        elif kind == "control_response":
            self._on_control_response(message)
        elif kind == "control_cancel_request":
            # the CLI no longer waits for its question (e.g. it aborted the tool): the approval ends now,
            # rather than at its timeout, and no answer is sent
            request_id = message.get("request_id")
            if isinstance(request_id, str) and request_id:
                self.withdraw(request_id)
        elif kind == "result":
            if message.get("is_error") or message.get("subtype") not in (None, "success"):
                result = message.get("result")
                detail = result if isinstance(result, str) and result else str(message.get("subtype") or "")
                self.result_error = f"Claude Code reported an error: {detail or 'unknown error'}"
            if self.interactive:
                self.close_stdin()  # the turn is over: the CLI exits at the end of its input

    def _on_control_request(self, message: dict[str, Any]) -> None:
        request_id = str(message.get("request_id") or "")
        request = message.get("request")
        if not isinstance(request, dict):
            self._respond_error(request_id, "malformed control request")
            return
        subtype = request.get("subtype")
        if subtype == "can_use_tool":
            self.spawn(self._can_use_tool(request_id, request), "claude-can-use-tool")
        elif subtype == "hook_callback":
            self._respond(request_id, self._hook_output(str(request.get("callback_id") or "")))
        else:
            self._respond_error(request_id, f"unsupported control request {subtype!r}")

    def _on_control_response(self, message: dict[str, Any]) -> None:
        response = message.get("response")
        if isinstance(response, dict) and response.get("subtype") == "error":
            self.note(f"Claude Code refused a control request: {response.get('error') or 'no reason given'}")

    def _hook_output(self, callback_id: str) -> dict[str, Any]:
        decision = "ask" if callback_id == ASK_CALLBACK and self.asks else "allow"
        reason = "The user decides in the web UI" if decision == "ask" else "Allowed by anyon"
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": decision,
                "permissionDecisionReason": reason,
            }
        }

    async def _can_use_tool(self, request_id: str, request: dict[str, Any]) -> None:
        tool_name = str(request.get("tool_name") or "unknown")
        raw_input = request.get("input")
        tool_input: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
        call_id = request.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            call_id = f"{tool_name}:{request_id}"
        if not self.asks:
            self._respond(request_id, {"behavior": "allow", "updatedInput": tool_input})
            return
        status = await self.ask(call_id, tool_name, tool_input, key=request_id)
        if not self.withdrawn(request_id):
            self._answer(request_id, tool_name, tool_input, status)

    def _answer(
        self, request_id: str, tool_name: str, tool_input: dict[str, Any], status: ApprovalStatus
    ) -> None:
        if status.get("status") == "approved":
            result: dict[str, Any] = {"behavior": "allow", "updatedInput": tool_input}
            if tool_name == EXIT_PLAN_MODE:
                result["updatedPermissions"] = [
                    {"type": "setMode", "mode": "bypassPermissions", "destination": "session"}
                ]
            self._respond(request_id, result)
            if tool_name == EXIT_PLAN_MODE:
                self.mode = "bypassPermissions"
                self.send(control_request({"subtype": "set_permission_mode", "mode": self.mode}))
            return
        if status.get("status") == "timed_out":
            reason = "The approval request timed out"
        else:
            reason = status.get("reason") or "The user denied this tool"
        self._respond(request_id, {"behavior": "deny", "message": reason, "interrupt": False})

    def _respond(self, request_id: str, response: dict[str, Any]) -> None:
        self.send(
            {
                "type": "control_response",
                "response": {"subtype": "success", "request_id": request_id, "response": response},
            }
        )

    def _respond_error(self, request_id: str, error: str) -> None:
        self.send(
            {
                "type": "control_response",
                "response": {"subtype": "error", "request_id": request_id, "error": error},
            }
        )

    # --- end ----------------------------------------------------------------------------------------

    async def interrupt(self) -> bool:
        await super().interrupt()
        if not self.interactive or self._handle is None or self._stdin_closed:
            return False
        try:
            await asyncio.wait_for(
                self._write(_line(control_request({"subtype": "interrupt"}))), _INTERRUPT_WAIT_SECONDS
            )
        except TimeoutError:
            return False
        return True

    def failure(self) -> str | None:
        if self.result_error is not None:
            return self.result_error
        if self.normalizer.summary is None:
            return "Claude Code ended without answering: no assistant message was produced."
        return None
