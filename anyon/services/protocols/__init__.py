"""Agent protocol clients: one per executor family that speaks a protocol over stdin/stdout.

:func:`client_for` picks the client of an executor, or ``None`` for agents whose output is only read (their
prompt is written to stdin, which is then closed). The execution engine hands a client the process once it
runs, every stdout chunk, the stop, and the end; see :mod:`anyon.services.protocols.base`.
"""

from __future__ import annotations

from anyon.services.agents.approvals import ApprovalService
from anyon.services.normalizer.entries import LogNormalizer
from anyon.services.protocols.acp import AcpClient
from anyon.services.protocols.base import AgentClient, ProtocolSink, RunRequest
from anyon.services.protocols.claude import ClaudeControlClient
from anyon.services.protocols.codex import CodexAppServerClient

#: Executors speaking ACP, with the name their messages use.
ACP_AGENTS = {"GEMINI": "Gemini CLI", "QWEN_CODE": "Qwen Code"}


def client_for(
    executor: str, run: RunRequest, normalizer: LogNormalizer, approvals: ApprovalService | None
) -> AgentClient | None:
    """The protocol client for one run of ``executor`` (a canonical BaseCodingAgent name), if it has one."""
    if executor == "CLAUDE_CODE":
        return ClaudeControlClient(run, normalizer, approvals)
    if executor == "CODEX":
        return CodexAppServerClient(run, normalizer, approvals)
    if executor in ACP_AGENTS:
        return AcpClient(run, normalizer, approvals, agent=ACP_AGENTS[executor])
    return None


__all__ = ["AgentClient", "ProtocolSink", "RunRequest", "client_for"]
