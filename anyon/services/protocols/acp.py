"""ACP, the Agent Client Protocol (Gemini CLI ``--experimental-acp``, Qwen Code): JSON-RPC 2.0 over stdio.

The conversation: ``initialize`` (we offer no file system or terminal of ours: the agent works in the
worktree itself) → ``session/new`` (or ``session/load`` to resume a session, when the agent can) →
``session/prompt`` with the prompt. The agent streams ``session/update`` notifications (read by
:class:`~anyon.services.normalizer.acp.AcpNormalizer`) and may ask ``session/request_permission`` before a
tool runs: with ``yolo`` (the default profiles) the client allows it; otherwise the user answers through the
approvals service. The answer to ``session/prompt`` (its ``stopReason``) ends the turn: stdin is closed and
the agent exits. A stop sends ``session/cancel`` first.
"""

from __future__ import annotations

import json
from typing import Any

from anyon import __version__
from anyon.services.agents.approvals import ApprovalService, ApprovalStatus
from anyon.services.normalizer.acp import replay_line
from anyon.services.normalizer.entries import LogNormalizer
from anyon.services.protocols.base import AgentClient, RunRequest

PROTOCOL_VERSION = 1


class AcpClient(AgentClient):
    """One run of an ACP agent (see the module docstring); ``agent`` names it in messages."""

    def __init__(
        self,
        run: RunRequest,
        normalizer: LogNormalizer,
        approvals: ApprovalService | None,
        *,
        agent: str = "The agent",
    ) -> None:
        super().__init__(run, normalizer, approvals)
        self.agent = agent
        self.asks = not run.options.get("yolo") and approvals is not None
        self._ids = 0
        self._requests: dict[int, str] = {}
        self.session: str | None = None
        self.error: str | None = None
        self.stop_reason: str | None = None
        self._replay_open = False

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ids += 1
        self._requests[self._ids] = method
        return {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}

    def initial_input(self) -> bytes:
        capabilities = {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False}
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "clientCapabilities": capabilities,
            "clientInfo": {"name": "anyon", "version": __version__},
        }
        return (json.dumps(self._request("initialize", params)) + "\n").encode()

    # --- the agent's messages -----------------------------------------------------------------------

    def on_message(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if isinstance(method, str) and "id" in message:
            self._on_agent_request(message["id"], method, message.get("params"))
        elif "id" in message and not isinstance(method, str):
            self._on_response(message)

    def _on_response(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        method = self._requests.pop(request_id, None) if isinstance(request_id, int) else None
        if method is None:
            return
        self._replaying(False)
        error = message.get("error")
        if error is not None:
            detail = error.get("message") if isinstance(error, dict) else str(error)
            self.error = f"{self.agent} refused {method}: {detail or 'no reason given'}"
            self.close_stdin()
            return
        result = message.get("result")
        if method == "initialize":
            capabilities = result.get("agentCapabilities") if isinstance(result, dict) else None
            can_load = isinstance(capabilities, dict) and bool(capabilities.get("loadSession"))
            where = {"cwd": self.run.worktree, "mcpServers": []}
            if self.run.session_id and can_load:
                self.session = self.run.session_id
                self._replaying(True)
                self.send(self._request("session/load", {"sessionId": self.session, **where}))
            else:
                if self.run.session_id:
                    self.note(f"{self.agent} cannot resume a session: the follow-up starts a new one.")
                self.send(self._request("session/new", where))
        elif method in ("session/new", "session/load"):
            if method == "session/new":
                session = result.get("sessionId") if isinstance(result, dict) else None
                if not isinstance(session, str) or not session:
                    self.error = f"{self.agent} answered session/new without a session id"
                    self.close_stdin()
                    return
                self.session = session
            elif self.normalizer.session_id is None:
                self.normalizer.session_id = self.session  # the resumed session goes on
            prompt = [{"type": "text", "text": self.run.prompt}]
            self.send(self._request("session/prompt", {"sessionId": self.session, "prompt": prompt}))
        elif method == "session/prompt":
            reason = result.get("stopReason") if isinstance(result, dict) else None
            self.stop_reason = str(reason) if reason is not None else "end_turn"
            if self.stop_reason == "refusal":
                self.error = f"{self.agent} refused to answer the prompt"
            self.close_stdin()  # the turn is over: the agent exits at the end of its input

    def _replaying(self, on: bool) -> None:
        """Mark the replay of a reloaded session in the stored log (see AcpNormalizer)."""
        if self._replay_open == on or self._sink is None:
            return
        self._replay_open = on
        self._sink.log_line(replay_line(on))

    def _on_agent_request(self, request_id: Any, method: str, params: Any) -> None:
        if method != "session/request_permission":
            error = {"code": -32601, "message": f"{method} is not offered by this client"}
            self.send({"jsonrpc": "2.0", "id": request_id, "error": error})
            return
        arguments = params if isinstance(params, dict) else {}
        self.spawn(self._permission(request_id, arguments), "acp-permission")

    async def _permission(self, request_id: Any, params: dict[str, Any]) -> None:
        options = [o for o in params.get("options") or [] if isinstance(o, dict)]
        if not self.asks:
            chosen = _option(options, "allow_always", "allow_once")
            self._answer(request_id, chosen)
            return
        raw = params.get("toolCall")
        call: dict[str, Any] = raw if isinstance(raw, dict) else {}
        call_id = call.get("toolCallId")
        if not isinstance(call_id, str) or not call_id:
            call_id = f"permission:{request_id}"
        tool_name = str(call.get("title") or call.get("kind") or "tool")
        status: ApprovalStatus = await self.ask(call_id, tool_name, call)
        if status.get("status") == "approved":
            self._answer(request_id, _option(options, "allow_once", "allow_always"))
        elif status.get("status") == "denied":
            self._answer(request_id, _option(options, "reject_once", "reject_always"))
        else:
            self._answer(request_id, None)

    def _answer(self, request_id: Any, option_id: str | None) -> None:
        outcome = {"outcome": "selected", "optionId": option_id} if option_id else {"outcome": "cancelled"}
        self.send({"jsonrpc": "2.0", "id": request_id, "result": {"outcome": outcome}})

    # --- end ----------------------------------------------------------------------------------------

    async def interrupt(self) -> bool:
        await super().interrupt()
        if self.session is None or self._stdin_closed or self._handle is None:
            return False
        notification = {"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": self.session}}
        await self._write((json.dumps(notification) + "\n").encode())
        return True

    def failure(self) -> str | None:
        if self.error is not None:
            return self.error
        if self.normalizer.summary is None:
            return f"{self.agent} ended without answering: no agent message was produced."
        return None


def _option(options: list[dict[str, Any]], *kinds: str) -> str | None:
    """The id of the first option of the first kind found, in the order of ``kinds``."""
    for kind in kinds:
        for option in options:
            if option.get("kind") == kind and isinstance(option.get("optionId"), str):
                return str(option["optionId"])
    return None
