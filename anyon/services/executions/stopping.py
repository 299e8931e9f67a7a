"""Stopping processes and attempts, including what a crash or an Engine outage left unsupervised.

A stop marks the process ``killed`` first, asks an agent with a protocol client to stop, then stops the
whole process tree (INT → TERM → KILL) and waits for its supervisor to settle it. When the runtime does
not answer, statuses are settled anyway and :class:`RunnerUnavailable` (503) is raised afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from anyon.services.db.models import ExecutionProcess, TaskAttempt
from anyon.services.errors import Conflict, NotFound
from anyon.services.executions.core import ContainerProvisioner, EngineCore, LiveProcess
from anyon.services.executions.preparation import AttemptPreparation
from anyon.services.executions.records import ProcessRecords
from anyon.services.protocols import AgentClient
from anyon.services.runners.base import RunnerError

log = logging.getLogger(__name__)


class ProcessStopper:
    def __init__(
        self,
        core: EngineCore,
        records: ProcessRecords,
        preparation: AttemptPreparation,
        provisioner: ContainerProvisioner | None,
    ) -> None:
        self._core = core
        self._records = records
        self._preparation = preparation
        self._provisioner = provisioner

    async def stop_process(self, process_id: uuid.UUID) -> None:
        """``POST /api/execution-processes/{id}/stop``: mark killed, then stop the whole process tree."""
        live = self._core.live.get(process_id)
        if live is None:
            exists = await self._core.db_call(
                lambda: ExecutionProcess.get_or_none(ExecutionProcess.id == process_id)
            )
            if exists is None:
                raise NotFound(f"Execution process {process_id} not found")
            raise Conflict("Execution process is not running")
        await self.stop(live)

    async def stop(self, live: LiveProcess) -> None:
        if live.stop_requested:
            if live.supervisor is not None:
                await asyncio.shield(live.supervisor)
            return
        live.stop_requested = True
        await self._records.record_exit(live, "killed", None)
        if live.protocol is not None:
            await self._interrupt(live, live.protocol)
        if live.handle is not None:
            try:
                await live.handle.stop(self._core.settings.stop_escalation_seconds)
            except RunnerError:
                # the runtime does not answer: the supervisor ends the process here (killed, task settled)
                # and the runner sweeps the container once it answers again
                if live.supervisor is not None:
                    live.supervisor.cancel()
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(live.supervisor)
                raise
        elif live.supervisor is not None:
            live.supervisor.cancel()  # still queued: leave the queue
        if live.supervisor is not None:
            try:
                await asyncio.shield(live.supervisor)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

    async def _interrupt(self, live: LiveProcess, protocol: AgentClient) -> None:
        """Pending approvals end and the agent is asked to stop; it gets a moment before the signals."""
        try:
            asked = await protocol.interrupt()
        except Exception:
            log.exception("interrupting process %s failed", live.process_id)
            return
        if asked and live.handle is not None:
            with contextlib.suppress(TimeoutError, RunnerError):
                await asyncio.wait_for(
                    asyncio.shield(live.handle.wait()), self._core.settings.stop_escalation_seconds
                )

    async def stop_attempt(self, attempt_id: uuid.UUID) -> None:
        """``POST /api/task-attempts/{id}/stop``: every running process of the attempt becomes ``killed``.

        Also what nobody here supervises: rows left ``running`` are marked ``killed`` (the task settles),
        and in cloud mode the attempt's container is swept when this server had nothing running in it or
        lost track of something there. When the runtime does not answer, the statuses are settled
        anyway and :class:`RunnerUnavailable` is raised (503) — the sweep follows once it answers.
        """
        core = self._core
        await core.db_call(self._preparation.load_context, attempt_id)
        mine = core.of_attempt(attempt_id)
        results = await asyncio.gather(*(self.stop(lv) for lv in mine), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        settled = await core.db_call(self._records.kill_unsupervised, attempt_id)
        if settled:
            await asyncio.gather(*(core.process_changed(pid) for pid in settled))
        provisioner = self._provisioner
        sweep = provisioner is not None and (not mine or failures or provisioner.unswept(str(attempt_id)))
        if sweep and not any(lv.context.attempt_id == attempt_id for lv in core.live.values()):
            assert provisioner is not None
            await provisioner.kill_strays(str(attempt_id))
        for failure in failures:
            raise failure

    async def before_task_delete(self, task_id: uuid.UUID) -> None:
        """Cloud mode: a task goes only once nothing of it can still run unseen in a container.

        Containers the server lost track of (a crash, an Engine outage) are swept first; when the Engine
        does not answer, :class:`RunnerUnavailable` refuses the delete (503) and nothing is deleted.
        Containers of settled attempts need no Engine now: their removal is retried by the periodic
        reconcile if the Engine is away.
        """
        provisioner = self._provisioner
        if provisioner is None:
            return

        def attempt_ids() -> list[str]:
            rows = TaskAttempt.select(TaskAttempt.id).where(TaskAttempt.task == task_id)
            return [str(row.id) for row in rows]

        for attempt_id in await self._core.db_call(attempt_ids):
            if provisioner.unswept(attempt_id):
                await provisioner.kill_strays(attempt_id)

    async def stop_everything(self) -> None:
        """Shutdown: every supervised process is stopped (errors are the runtime's, already logged)."""
        await asyncio.gather(
            *(self.stop(lv) for lv in list(self._core.live.values())), return_exceptions=True
        )
