"""``codex app-server``: JSON-RPC over stdin/stdout (JSON lines without the ``"jsonrpc"`` member, as Codex).

The conversation, in order: ``initialize`` → (answer) ``initialized`` notification → ``newConversation`` with
the profile's options (or ``resumeConversation`` with the session to resume) → (answer: the conversation id)
``addConversationListener`` and ``sendUserMessage`` with the prompt. Codex then streams ``codex/event/*``
notifications (read by :class:`~anyon.services.normalizer.CodexAppServerNormalizer`) and may ask, as
JSON-RPC requests, ``execCommandApproval`` (run a command) or ``applyPatchApproval`` (write files): with an
approval policy that asks (the APPROVALS variant) the user answers through the approvals service, otherwise
they are approved. ``codex/event/task_complete`` ends the turn: stdin is closed and the server exits.

A run that ends without an agent message is never a success: a refused request (no login, an unknown
model) or a turn with no answer fails with a message that says so, where ``app-server`` itself exits 0.
"""

from __future__ import annotations

import json
from typing import Any

from anyon import __version__
from anyon.services.agents.approvals import ApprovalService
from anyon.services.normalizer.codex import EXEC_TOOL, PATCH_TOOL
from anyon.services.normalizer.entries import LogNormalizer
from anyon.services.protocols.base import AgentClient, RunRequest

#: Profile options (types.md §5) → ``newConversation`` parameters.
_PARAMS = {
    "model": "model",
    "profile": "profile",
    "ask_for_approval": "approvalPolicy",
    "sandbox": "sandbox",
    "base_instructions": "baseInstructions",
    "include_plan_tool": "includePlanTool",
    "include_apply_patch_tool": "includeApplyPatchTool",
}
#: Profile options passed as Codex configuration overrides.
_CONFIG = ("model_reasoning_effort", "model_reasoning_summary", "model_reasoning_summary_format")
_APPROVAL_METHODS = {"execCommandApproval": EXEC_TOOL, "applyPatchApproval": PATCH_TOOL}
NO_ANSWER = (
    "Codex ended without answering: no agent message was produced. It may not be logged in "
    "(`codex login`) or could not reach its model service."
)


class CodexAppServerClient(AgentClient):
    """One Codex run over the app-server protocol (see the module docstring)."""

    def __init__(self, run: RunRequest, normalizer: LogNormalizer, approvals: ApprovalService | None) -> None:
        super().__init__(run, normalizer, approvals)
        policy = run.options.get("ask_for_approval")
        self.asks = policy not in (None, "never") and approvals is not None
        self._ids = 0
        self._requests: dict[int, str] = {}
        self.conversation_id: str | None = None
        self.error: str | None = None
        self.completed = False

    # --- requests -----------------------------------------------------------------------------------

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ids += 1
        self._requests[self._ids] = method
        return {"id": self._ids, "method": method, "params": params}

    def conversation_params(self) -> dict[str, Any]:
        options = self.run.options
        params: dict[str, Any] = {"cwd": self.run.worktree}
        for option, name in _PARAMS.items():
            if options.get(option) is not None:
                params[name] = options[option]
        config = {key: options[key] for key in _CONFIG if options.get(key) is not None}
        if config:
            params["config"] = config
        return params

    def initial_input(self) -> bytes:
        client = {"name": "anyon", "title": "anyon", "version": __version__}
        return (json.dumps(self._request("initialize", {"clientInfo": client})) + "\n").encode()

    # --- the server's messages ----------------------------------------------------------------------

    def on_message(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if isinstance(method, str) and "id" in message:
            self._on_server_request(message["id"], method, message.get("params"))
        elif "id" in message:
            self._on_response(message)
        elif isinstance(method, str):
            self._on_notification(method, message.get("params"))

    def _on_response(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        method = self._requests.pop(request_id, None) if isinstance(request_id, int) else None
        if method is None:
            return
        error = message.get("error")
        if error is not None:
            detail = error.get("message") if isinstance(error, dict) else str(error)
            self.error = f"Codex refused {method}: {detail or 'no reason given'}"
            self.close_stdin()
            return
        result = message.get("result")
        if method == "initialize":
            self.send({"method": "initialized"})
            params = self.conversation_params()
            if self.run.session_id:
                self.send(
                    self._request("resumeConversation", {"path": self.run.session_id, "overrides": params})
                )
            else:
                self.send(self._request("newConversation", params))
        elif method in ("newConversation", "resumeConversation"):
            conversation = result.get("conversationId") if isinstance(result, dict) else None
            if not isinstance(conversation, str) or not conversation:
                self.error = f"Codex answered {method} without a conversation id"
                self.close_stdin()
                return
            self.conversation_id = conversation
            self.send(self._request("addConversationListener", {"conversationId": conversation}))
            items = [{"type": "text", "data": {"text": self.run.prompt}}]
            self.send(self._request("sendUserMessage", {"conversationId": conversation, "items": items}))

    def _on_notification(self, method: str, params: Any) -> None:
        event = params.get("msg") if isinstance(params, dict) else None
        kind = event.get("type") if isinstance(event, dict) else method.removeprefix("codex/event/")
        if kind == "task_complete":
            self.completed = True
            self.close_stdin()  # the turn is over: app-server exits at the end of its input
        elif kind == "turn_aborted":
            self.close_stdin()

    def _on_server_request(self, request_id: Any, method: str, params: Any) -> None:
        tool = _APPROVAL_METHODS.get(method)
        if tool is None:
            self.send({"id": request_id, "error": {"code": -32601, "message": f"{method} is not supported"}})
            return
        self.spawn(
            self._approve(request_id, tool, params if isinstance(params, dict) else {}), "codex-approval"
        )

    async def _approve(self, request_id: Any, tool: str, params: dict[str, Any]) -> None:
        if not self.asks:
            self.send({"id": request_id, "result": {"decision": "approved_for_session"}})
            return
        call_id = params.get("callId") or params.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            call_id = f"{tool}:{request_id}"
        status = await self.ask(call_id, tool, params)
        decision = "approved" if status.get("status") == "approved" else "denied"
        self.send({"id": request_id, "result": {"decision": decision}})

    # --- end ----------------------------------------------------------------------------------------

    def failure(self) -> str | None:
        if self.error is not None:
            return self.error
        if self.normalizer.summary is None:
            return NO_ANSWER
        return None
