"""The end of one process (spec §5.3 "On exit"): its status, summary, commit, and closing rows.

:meth:`ProcessFinisher.settle` decides the status and commits; the supervisor then starts the next action
of the chain, if any, and :meth:`ProcessFinisher.close` ends the live stream. An attempt with nothing left
to run calls its finished hooks (notifications, the queued follow-up), registered by the composition.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from anyon.services.board.attempt_repos import AttemptRepos
from anyon.services.executions import supervision
from anyon.services.executions.core import EngineCore, FinishedHook, LiveProcess
from anyon.services.executions.output import ProcessOutput
from anyon.services.executions.records import ProcessRecords
from anyon.services.git.errors import GitServiceError
from anyon.services.memory import release_memory
from anyon.services.normalizer.failures import no_answer_message

log = logging.getLogger(__name__)

#: Seconds after a process ended before freed heap is returned: its live readers finish sending first.
_RELEASE_MEMORY_AFTER_SECONDS = 1.0


class ProcessFinisher:
    def __init__(
        self,
        core: EngineCore,
        output: ProcessOutput,
        records: ProcessRecords,
        repos: AttemptRepos,
        finished_hooks: list[FinishedHook] | None = None,
    ) -> None:
        self._core = core
        self._output = output
        self._records = records
        self._repos = repos
        #: called in order once an attempt has nothing left to run (see :meth:`close`)
        self.finished_hooks: list[FinishedHook] = list(finished_hooks or [])

    async def settle(self, live: LiveProcess, exit_code: int | None, *, oom: bool) -> dict[str, Any] | None:
        """Status, summary and commit of the ended process; returns the next action to start, if any."""
        output = self._output
        if live.protocol is not None:
            await live.protocol.finish()
        await output.release_tail(live)
        if live.normalizer is not None:
            ops = live.normalizer.finish()
            if ops:
                live.store.push_patch(ops)
        if oom:
            output.emit(live, "stderr", "Process was killed: it exceeded its memory limit.\n")
        self._note_outcome(live, exit_code, oom=oom)
        refused = self._protocol_failure(live, exit_code)
        await output.flush(live)
        killed = live.stop_requested
        if killed:
            status = "killed"
        elif live.failure_reason is not None or refused or live.failure_acted:
            status = "failed"
        else:
            status = "completed" if exit_code == 0 else "failed"
        normalizer = live.normalizer
        if status == "completed" and normalizer is not None and normalizer.requires_answer:
            status = "completed" if normalizer.answered else "failed"  # no reply is no success
            if not normalizer.answered and live.output.is_set():  # a silent run got its note already
                executor = live.command.executor if live.command is not None else "the agent"
                output.note(live, no_answer_message(executor, exit_code))
                await output.flush(live)
        if live.normalizer is not None:
            await self._core.db_call(
                self._records.save_session, live.process_id, None, live.normalizer.summary
            )
        next_action = live.action.get("next_action")
        committed = False
        may_continue = not killed and (status == "completed" or live.run_reason == "cleanupscript")
        # the commit lands before the status does: whoever sees "completed" also sees the agent's commit
        if may_continue and live.run_reason in ("codingagent", "cleanupscript"):
            committed = await self._commit(live)
        await self._records.record_exit(live, status, exit_code)
        live.finishing = True
        run_next = live.run_reason != "codingagent" or committed
        if may_continue and next_action is not None and run_next:
            result: dict[str, Any] = next_action
            return result
        return None

    def _protocol_failure(self, live: LiveProcess, exit_code: int | None) -> bool:
        """A clean exit the agent's protocol client refuses as a success (no answer, an error result)."""
        if live.protocol is None or live.stop_requested or live.failure_reason is not None or exit_code != 0:
            return False
        reason = live.protocol.failure()
        if reason is None:
            return False
        if live.output.is_set():  # a silent process has its note already (see _note_outcome)
            self._output.note(live, reason)
        return True

    def _note_outcome(self, live: LiveProcess, exit_code: int | None, *, oom: bool) -> None:
        """What the exit code alone does not say: a silent success, a child OOM kill, a pids limit."""
        handle = live.handle
        if handle is None or live.stop_requested:
            return
        if handle.child_oom_killed and not oom:
            self._output.note(live, supervision.CHILD_OOM_MESSAGE)
        if handle.pids_limit_hit and not live.pids_limit_noted:
            live.pids_limit_noted = True
            self._output.note(live, supervision.PIDS_LIMIT_MESSAGE)
        silent = not live.output.is_set() and live.failure_reason is None
        if live.run_reason == "codingagent" and exit_code == 0 and silent:
            self._output.note(live, supervision.NO_OUTPUT_MESSAGE)

    async def _commit(self, live: LiveProcess) -> bool:
        summary = live.normalizer.summary if live.normalizer is not None else None
        if live.run_reason == "codingagent":
            message = (
                summary or f"Commit changes from coding agent for task attempt {live.context.attempt_id}"
            )
        else:
            message = f"Cleanup script changes for task attempt {live.context.attempt_id}"
        try:
            sha = await self._repos.commit_all(live.context.checkout, message)
        except GitServiceError as exc:
            self._output.emit(live, "stderr", f"Failed to commit changes: {exc}\n")
            await self._output.flush(live)
            return False
        return sha is not None

    async def close(self, live: LiveProcess, *, finalize: bool) -> None:
        """after_head_commit, task status, then end the live stream and forget the process."""
        core = self._core
        try:
            await asyncio.to_thread(self._records.close_rows, live, finalize=finalize)
            await core.process_changed(live.process_id)
        finally:
            live.store.finish()
            core.live.pop(live.process_id, None)
            live.closed.set()
            core.spawn_background(self._release_memory_later(), f"release-memory:{live.process_id}")
        if finalize:
            for hook in self.finished_hooks:
                hook(live.context.attempt_id, live.process_id)

    async def _release_memory_later(self) -> None:
        """A process ended: once its buffers are dropped, give the freed heap back to the OS (see memory)."""
        await asyncio.sleep(_RELEASE_MEMORY_AFTER_SECONDS)
        await asyncio.to_thread(release_memory)
