"""Tool approvals: an agent asks before it uses a tool, a person answers in the UI (spec §11).

An agent's protocol client (APPROVALS and PLAN variants) calls :meth:`ApprovalService.request` when the
CLI asks whether a tool may run, shows the returned approval as ``pending_approval`` in the normalized log,
and awaits :meth:`PendingApproval.wait`. The answer comes from ``POST /api/approvals/{id}/respond``
(:meth:`ApprovalService.respond`), from the timeout (``executions.approval_timeout_seconds``, 1 h by
default, as the reference), from the process stopping (:meth:`ApprovalService.cancel_process`), or from the
agent withdrawing its question (:meth:`ApprovalService.withdraw`).

Approvals live in memory only: one that is pending belongs to a running process, whose protocol stream
dies with the server anyway. Answered ones are remembered (a bounded number) so that a second answer is a
clear 409 rather than a puzzling 404.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from anyon.services.errors import Conflict, NotFound, ServiceError

#: Answered approvals remembered for the 409 on a second answer; older ones are forgotten (404).
ANSWERED_KEPT = 1024
#: Why a stop ends an approval (the agent is told; later answers get a 409 saying so).
STOPPED_REASON = "The execution process stopped before the approval was answered"

ApprovalStatus = dict[str, Any]


def approved() -> ApprovalStatus:
    return {"status": "approved"}


def denied(reason: str | None = None) -> ApprovalStatus:
    return {"status": "denied", "reason": reason}


def timed_out() -> ApprovalStatus:
    return {"status": "timed_out"}


def _wire_time(moment: datetime) -> str:
    """RFC 3339 with milliseconds and ``Z`` (types.md §0)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class PendingApproval:
    """One question to the user: :attr:`status` stays ``pending`` until answered, timed out or cancelled."""

    id: str
    execution_process_id: uuid.UUID
    tool_name: str
    tool_call_id: str
    requested_at: datetime
    timeout_at: datetime
    status: ApprovalStatus = field(default_factory=lambda: {"status": "pending"})
    #: set when the process stopped or the agent withdrew the question: later answers are refused with
    #: :attr:`cancel_note` as the reason
    cancelled: bool = False
    cancel_note: str = "the execution process stopped"
    _answered: asyncio.Event = field(default_factory=asyncio.Event)
    _timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        return bool(self.status["status"] == "pending")

    def tool_status(self) -> dict[str, Any]:
        """The ``ToolStatus`` the normalized log shows while it waits (types.md §10)."""
        return {
            "status": "pending_approval",
            "approval_id": self.id,
            "requested_at": _wire_time(self.requested_at),
            "timeout_at": _wire_time(self.timeout_at),
        }

    async def wait(self) -> ApprovalStatus:
        """The final status: approved, denied (also when the process stopped) or timed out."""
        await self._answered.wait()
        return self.status

    def _settle(self, status: ApprovalStatus) -> bool:
        if not self.pending:
            return False
        self.status = status
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._answered.set()
        return True


class ApprovalService:
    """Pending approvals by id; answers, timeouts and cancellations (see the module docstring)."""

    def __init__(self, timeout_seconds: float, *, clock: Callable[[], datetime] | None = None) -> None:
        self._timeout = timeout_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._pending: dict[str, PendingApproval] = {}
        self._answered: OrderedDict[str, PendingApproval] = OrderedDict()

    @property
    def timeout_seconds(self) -> float:
        return self._timeout

    def request(self, execution_process_id: uuid.UUID, tool_name: str, tool_call_id: str) -> PendingApproval:
        """A new pending approval; it times out by itself. Call from the event loop."""
        now = self._clock()
        approval = PendingApproval(
            id=str(uuid.uuid4()),
            execution_process_id=execution_process_id,
            tool_name=tool_name,
            tool_call_id=tool_call_id,
            requested_at=now,
            timeout_at=now + timedelta(seconds=self._timeout),
        )
        loop = asyncio.get_running_loop()
        approval._timer = loop.call_later(self._timeout, self._finish, approval, timed_out())
        self._pending[approval.id] = approval
        return approval

    def respond(
        self, approval_id: str, execution_process_id: uuid.UUID, status: ApprovalStatus
    ) -> ApprovalStatus:
        """Answer a pending approval with ``approved`` or ``denied{reason}``; returns the resulting status.

        Unknown id (or one of another process) → :class:`NotFound`; answered, timed out or cancelled
        already → :class:`Conflict` naming what happened.
        """
        kind = status.get("status")
        if kind == "approved":
            answer = approved()
        elif kind == "denied":
            reason = status.get("reason")
            if reason is not None and not isinstance(reason, str):
                raise ServiceError("status.reason must be a string or null")
            answer = denied(reason)
        else:
            raise ServiceError(f"an approval is answered with 'approved' or 'denied', not {kind!r}")
        approval = self._pending.get(approval_id) or self._answered.get(approval_id)
        if approval is None or approval.execution_process_id != execution_process_id:
            raise NotFound(f"Approval {approval_id} not found for execution process {execution_process_id}")
        if not approval.pending:
            raise Conflict(f"Approval {approval_id} is no longer pending: {self._outcome(approval)}")
        self._finish(approval, answer)
        return approval.status

    def cancel_process(self, execution_process_id: uuid.UUID) -> int:
        """The process stopped: its pending approvals end (denied, with the reason); returns how many."""
        mine = [a for a in self._pending.values() if a.execution_process_id == execution_process_id]
        for approval in mine:
            approval.cancelled = True
            self._finish(approval, denied(STOPPED_REASON))
        return len(mine)

    def withdraw(self, approval_id: str, reason: str) -> bool:
        """The agent no longer waits for this answer (it cancelled its own question): the approval ends
        denied with ``reason``; later answers get a 409 saying it was withdrawn. False when not pending."""
        approval = self._pending.get(approval_id)
        if approval is None:
            return False
        approval.cancelled = True
        approval.cancel_note = "the agent withdrew the question"
        self._finish(approval, denied(reason))
        return True

    def get(self, approval_id: str) -> PendingApproval | None:
        return self._pending.get(approval_id) or self._answered.get(approval_id)

    def pending_count(self) -> int:
        return len(self._pending)

    def _finish(self, approval: PendingApproval, status: ApprovalStatus) -> None:
        if not approval._settle(status):
            return
        self._pending.pop(approval.id, None)
        self._answered[approval.id] = approval
        while len(self._answered) > ANSWERED_KEPT:
            self._answered.popitem(last=False)

    @staticmethod
    def _outcome(approval: PendingApproval) -> str:
        if approval.cancelled:
            return approval.cancel_note
        kind = approval.status["status"]
        if kind == "timed_out":
            return "it timed out"
        return f"it was already {kind}"
