"""One execution process from queueing to exit, owned by one asyncio task (its supervisor).

The supervisor waits for a slot (:class:`~.slots.ExecutionSlots`), builds the command (a script under the
shell, or the agent's CLI with its protocol client), spawns it through the :class:`Runner` (the host or the
attempt's container — the only difference between the modes), pumps both streams through
:class:`~.output.ProcessOutput`, watches the start timeout and the maximum run time (:mod:`.supervision`),
and at exit hands over to :class:`~.finish.ProcessFinisher`, then starts the chain's next action.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from anyon.services.agents.agent_commands import Command
from anyon.services.agents.approvals import ApprovalService
from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.agents.launchers import AgentLauncher
from anyon.services.agents.profile_catalog import ProfileError
from anyon.services.db.columns import utc_now
from anyon.services.db.models import ExecutionProcess
from anyon.services.db.serialize import process_json
from anyon.services.executions import actions, launch, supervision
from anyon.services.executions.core import AttemptContext, EngineCore, LiveProcess
from anyon.services.executions.finish import ProcessFinisher
from anyon.services.executions.output import ProcessOutput
from anyon.services.executions.records import ProcessRecords
from anyon.services.executions.slots import ExecutionSlots
from anyon.services.logs.logcap import LogCap
from anyon.services.logs.msgstore import MsgStore
from anyon.services.normalizer import COMMAND_PREFIX, normalizer_for
from anyon.services.protocols import RunRequest, client_for
from anyon.services.runners.base import Runner, RunnerError, RunningProcess

log = logging.getLogger(__name__)


class ProcessSupervisor:
    def __init__(
        self,
        core: EngineCore,
        output: ProcessOutput,
        records: ProcessRecords,
        finisher: ProcessFinisher,
        runner: Runner,
        profiles: ExecutorProfiles,
        slots: ExecutionSlots,
        *,
        shell: str,
        launcher: AgentLauncher,
        agent_env: dict[str, str],
        approvals: ApprovalService | None,
    ) -> None:
        self._core = core
        self._settings = core.settings
        self._output = output
        self._records = records
        self._finisher = finisher
        self._runner = runner
        self._profiles = profiles
        self.slots = slots
        self._shell = shell
        self._launcher = launcher
        self._found = launch.FoundPrograms()  # CLIs found in attempts' containers
        # extra variables of coding agents only (HOME = the agent home in local mode)
        self._agent_env = dict(agent_env)
        self._approvals = approvals

    async def start_execution(self, context: AttemptContext, action: dict[str, Any]) -> dict[str, Any]:
        """Insert the process row and hand it to its supervisor task; answers with the row."""
        core = self._core
        run_reason = actions.run_reason_of(action)
        process = await asyncio.to_thread(self._records.insert_process, context, action, run_reason)
        live = LiveProcess(
            process_id=process.id,
            context=context,
            run_reason=run_reason,
            action=action,
            store=MsgStore(byte_cap=self._settings.log_memory_bytes),
            cap=LogCap(self._settings.log_cap_bytes),
        )
        if actions.is_agent(action):
            executor = action["typ"]["executor_profile_id"]["executor"]
            live.normalizer = normalizer_for(executor, worktree=context.worktree, keep_entries=False)
        core.live[process.id] = live
        live.supervisor = core.spawn_background(self._supervise(live), f"process:{process.id}")
        await core.process_changed(process.id)
        return process_json(process)

    def _command(self, live: LiveProcess) -> tuple[list[str], bytes | None]:
        typ = live.action["typ"]
        if typ["type"] == actions.SCRIPT:
            return [self._shell, "-c", typ["script"]], None
        profile = self._profiles.profile_id_from_json(typ["executor_profile_id"])
        session = typ.get("session_id") if typ["type"] == actions.FOLLOW_UP else None
        new_session = str(live.process_id)  # for agents whose session id the server chooses (Copilot)
        command = self._profiles.command(profile, follow_up_session_id=session, new_session_id=new_session)
        live.command = command
        if live.normalizer is not None:
            live.normalizer.planned_session_id = session or new_session
            prompt = self._profiles.full_prompt(profile, typ["prompt"])
            options = self._profiles.options(profile)
            run = RunRequest(live.process_id, prompt, session, options, live.context.worktree)
            live.protocol = client_for(profile.executor, run, live.normalizer, self._approvals)
            if live.protocol is not None:
                return command.argv, live.protocol.initial_input()
        stdin = self._profiles.stdin_payload(profile, typ["prompt"]) if command.prompt_via_stdin else None
        return command.argv, stdin

    async def _supervise(self, live: LiveProcess) -> None:
        acquired = False
        exit_code: int | None = None
        oom = False
        output = self._output
        try:
            await self.slots.acquire(lambda position: self._note_queued(live, position))
            acquired = True
            if live.stop_requested:
                return
            if live.queued_at is not None:
                await self._note_dequeued(live)
            argv, stdin = self._command(live)
            env: dict[str, str] = {}
            try:
                if live.command is not None:
                    argv = await self._launch(live, live.command)
                    env = self._agent_env
                live.handle = await self._runner.spawn(
                    argv,
                    live.context.worktree,
                    env,
                    stdin,
                    attempt_id=str(live.context.attempt_id),
                    interactive=live.protocol is not None and live.protocol.interactive,
                )
                if live.protocol is not None:
                    live.protocol.attach(live.handle, output.protocol_sink(live))
                if live.run_reason == "codingagent":
                    self._core.timings.mark(live.context.attempt_id, "spawned")
            except (RunnerError, ProfileError, OSError) as exc:
                await self._spawn_failed(live, exc)
                return
            if live.stop_requested:  # stopped while it was being spawned
                await live.handle.stop(self._settings.stop_escalation_seconds)
            limits = supervision.limits_for(live.run_reason, self._settings)
            watchdog = self._watch(live, live.handle, limits) if limits.any else None
            try:
                await asyncio.gather(
                    output.pump(live, live.handle.stdout, "stdout"),
                    output.pump(live, live.handle.stderr, "stderr"),
                )
                try:
                    exit_code = await live.handle.wait()
                except RunnerError as exc:  # the runtime stopped answering: the exit is unknown
                    output.emit(live, "stderr", f"Lost track of the process: {exc}\n")
                else:
                    oom = live.handle.oom_killed
            finally:
                if watchdog is not None:
                    await self._settle_watchdog(live, watchdog)
        except asyncio.CancelledError:
            if live.handle is not None and live.handle.returncode is None:
                try:
                    await asyncio.shield(live.handle.stop(self._settings.stop_escalation_seconds))
                except RunnerError as exc:
                    log.warning("stopping process %s failed: %s", live.process_id, exc)
            live.stop_requested = True
            await asyncio.shield(self._finish(live, None, oom=False))
            raise
        finally:
            if acquired:
                self.slots.release()
        await self._finish(live, exit_code, oom=oom)

    async def _finish(self, live: LiveProcess, exit_code: int | None, *, oom: bool) -> None:
        """The process ended: settle it, start the chain's next action, close it (spec §5.3 "On exit")."""
        next_action = await self._finisher.settle(live, exit_code, oom=oom)
        started_next = False
        if next_action is not None:
            try:
                await self.start_execution(live.context, next_action)
                started_next = True
            except Exception:
                log.exception("starting the next action of process %s failed", live.process_id)
        await self._finisher.close(live, finalize=not started_next and live.run_reason != "devserver")

    def _note_queued(self, live: LiveProcess, position: int) -> None:
        live.queued_at = time.monotonic()
        self._output.emit(
            live,
            "stdout",
            f"Waiting for a free execution slot, position {position} in the queue "
            f"(executions.max_concurrent = {self._settings.max_concurrent})...\n",
            from_server=True,
        )
        # stored now, not with the first output: the log of a waiting process is read while it waits
        live.queue_flush = self._core.spawn_background(
            self._output.flush(live), f"queued-log:{live.process_id}"
        )

    async def _note_dequeued(self, live: LiveProcess) -> None:
        """The wait is over: say so, and make ``started_at`` the real start rather than the queueing."""
        waited = time.monotonic() - (live.queued_at or time.monotonic())
        if live.queue_flush is not None:
            await asyncio.gather(live.queue_flush, return_exceptions=True)  # keeps the log in order
        self._output.emit(
            live, "stdout", f"A slot is free after {waited:.1f} s of waiting; starting.\n", from_server=True
        )

        def restart_clock() -> None:
            now = utc_now()
            ExecutionProcess.update(started_at=now, updated_at=now).where(
                ExecutionProcess.id == live.process_id
            ).execute()

        await self._core.db_call(restart_clock)
        await self._core.process_changed(live.process_id)

    def _watch(
        self, live: LiveProcess, handle: RunningProcess, limits: supervision.Limits
    ) -> asyncio.Task[None]:
        """Stop the process when it stays silent past the start timeout or runs past the maximum."""

        async def watch() -> None:
            loop = asyncio.get_running_loop()
            started = loop.time()
            max_deadline = started + limits.max_run if limits.max_run > 0 else None
            if limits.start_timeout > 0:
                start_deadline = started + limits.start_timeout
                if max_deadline is None or start_deadline < max_deadline:
                    try:
                        await asyncio.wait_for(live.output.wait(), limits.start_timeout)
                    except TimeoutError:
                        await self._time_out(
                            live, handle, supervision.start_timeout_message(limits.start_timeout)
                        )
                        return
            if max_deadline is not None:
                await asyncio.sleep(max(0.0, max_deadline - loop.time()))
                await self._time_out(
                    live, handle, supervision.max_run_message(limits.max_run, live.run_reason)
                )

        return asyncio.ensure_future(watch())

    async def _time_out(self, live: LiveProcess, handle: RunningProcess, message: str) -> None:
        """End the process through the ordinary stop (INT → TERM → KILL of its whole tree) as failed."""
        if live.stop_requested or handle.returncode is not None:
            return
        live.failure_reason = message
        log.warning("process %s: %s", live.process_id, message)
        self._output.note(live, message)
        await self._output.flush(live)
        await handle.stop(self._settings.stop_escalation_seconds)

    async def _settle_watchdog(self, live: LiveProcess, watchdog: asyncio.Task[None]) -> None:
        """A watchdog that fired finishes its stop; one that did not is cancelled."""
        if live.failure_reason is None:
            watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)

    async def _launch(self, live: LiveProcess, command: Command) -> list[str]:
        """Pick the agent's binary (agents/launchers.py), then show the command line and record it."""
        chosen = await launch.resolve(
            self._launcher,
            self._runner,
            command,
            live.context.worktree,
            str(live.context.attempt_id),
            self._found,
        )
        self._output.emit(live, "stdout", f"{COMMAND_PREFIX}{chosen.display}\n", from_server=True)
        live.action = launch.action_with_command(live.action, chosen)

        def record() -> None:
            ExecutionProcess.update(executor_action=live.action, updated_at=utc_now()).where(
                ExecutionProcess.id == live.process_id
            ).execute()

        await self._core.db_call(record)
        await self._core.process_changed(live.process_id)
        return chosen.argv

    async def _spawn_failed(self, live: LiveProcess, exc: Exception) -> None:
        reason = launch.spawn_failure_message(live.command, exc)
        message = f"Failed to start execution: {reason}"
        log.warning("process %s: %s", live.process_id, message)
        # every normaliser reads this line: a missing CLI becomes a setup_required entry (spec §2.6)
        self._output.emit(live, "stderr", message + "\n")
        await self._output.flush(live)
        await self._records.record_exit(live, "failed", None)
        await self._finisher.close(live, finalize=live.run_reason != "devserver")
