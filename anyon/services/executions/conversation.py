"""The conversation with an attempt's agent after its first run (spec §5.4).

Follow-ups resume the agent's session; a retry first resets the worktree to before an earlier process
and drops that process and the ones after it; a queued follow-up draft is sent once nothing of the
attempt runs; the executor's setup helper and the project's dev server run in the attempt's workspace.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.board.attempt_repos import AttemptRepos
from anyon.services.board.drafts import DraftService
from anyon.services.board.images import ImageService
from anyon.services.db.columns import utc_now
from anyon.services.db.models import ExecutionProcess, ExecutorSession, Project
from anyon.services.errors import Conflict, ServiceError
from anyon.services.executions import actions, agent_setup
from anyon.services.executions.core import AttemptContext, EngineCore, parse_profile
from anyon.services.executions.preparation import AttemptPreparation
from anyon.services.executions.stopping import ProcessStopper
from anyon.services.executions.supervisor import ProcessSupervisor
from anyon.services.git import GitService

log = logging.getLogger(__name__)

#: Longest a follow-up waits for the attempt's last process to finish closing before answering 409.
FINISHING_WAIT_SECONDS = 10.0


class Conversation:
    def __init__(
        self,
        core: EngineCore,
        preparation: AttemptPreparation,
        supervisor: ProcessSupervisor,
        stopper: ProcessStopper,
        *,
        profiles: ExecutorProfiles,
        git: GitService,
        repos: AttemptRepos,
        images: ImageService | None,
        drafts: DraftService | None,
    ) -> None:
        self._core = core
        self._preparation = preparation
        self._supervisor = supervisor
        self._stopper = stopper
        self._profiles = profiles
        self._git = git
        self._repos = repos
        self._images = images
        self._drafts = drafts

    def _latest_agent(self, attempt_id: uuid.UUID) -> tuple[ExecutionProcess | None, str | None]:
        process = (
            ExecutionProcess.select()
            .where(
                (ExecutionProcess.task_attempt == attempt_id)
                & (ExecutionProcess.run_reason == "codingagent")
                & (ExecutionProcess.dropped == False)  # noqa: E712 - peewee expression
            )
            .order_by(ExecutionProcess.created_at.desc())
            .first()
        )
        session = (
            ExecutorSession.select(ExecutorSession.session_id)
            .join(ExecutionProcess, on=(ExecutorSession.execution_process == ExecutionProcess.id))
            .where(
                (ExecutorSession.task_attempt == attempt_id)
                & (ExecutionProcess.dropped == False)  # noqa: E712
                & ExecutorSession.session_id.is_null(False)
            )
            .order_by(ExecutorSession.created_at.desc())
            .first()
        )
        return process, session.session_id if session else None

    async def follow_up(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        """``POST …/follow-up`` (spec §5.4): the next agent request, resuming the agent's session."""
        prompt = body.get("prompt") or ""
        if not prompt.strip():
            raise ServiceError("Prompt cannot be empty")
        image_ids = body.get("image_ids") or []
        if self._images is not None:  # unknown ids are refused before anything is reset or written
            await asyncio.to_thread(self._images.check_known, image_ids)
        context = await self._preparation.ensure_worktree(attempt_id)
        # the container first: with the Engine away this refuses (503) before anything is reset or written
        await self._preparation.ensure_container(context)
        if body.get("retry_process_id"):
            await self._retry_reset(context, uuid.UUID(body["retry_process_id"]), body)
        await self._core.wait_while_finishing(attempt_id, FINISHING_WAIT_SECONDS)
        if self._core.attempt_busy(attempt_id):
            raise Conflict("A process of this attempt is still running; stop it before sending a follow-up")
        latest, session_id = await self._core.db_call(self._latest_agent, attempt_id)
        if latest is None:
            raise ServiceError("No coding agent has run in this attempt yet")
        if self._images is not None:  # the follow-up's images join the task's; all are placed again
            prompt = await asyncio.to_thread(
                self._images.attach_and_place, context.task_id, image_ids, context.worktree, prompt
            )
        base_profile = latest.executor_action["typ"]["executor_profile_id"]
        profile = parse_profile(
            self._profiles, {"executor": base_profile["executor"], "variant": body.get("variant")}
        )
        cleanup = actions.cleanup_or_none(context.cleanup_script)
        if session_id:
            action = actions.follow_up(prompt, session_id, profile, cleanup)
        else:
            action = actions.initial(prompt, profile, cleanup)
        process = await self._supervisor.start_execution(context, action)
        if self._drafts is not None:
            await asyncio.to_thread(self._drafts.clear, attempt_id, "follow_up")
            if body.get("retry_process_id"):
                await asyncio.to_thread(self._drafts.clear, attempt_id, "retry")
        return process

    async def run_agent_setup(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        """``POST …/run-agent-setup``: the executor's setup helper, then its last request again."""
        profile = parse_profile(self._profiles, body.get("executor_profile_id"))
        context = await self._preparation.ensure_worktree(attempt_id)
        await self._preparation.ensure_container(context)
        await self._core.wait_while_finishing(attempt_id, FINISHING_WAIT_SECONDS)
        if self._core.attempt_busy(attempt_id):
            raise Conflict("A process of this attempt is still running; stop it before running the setup")
        latest, _session = await self._core.db_call(self._latest_agent, attempt_id)
        action = agent_setup.setup_action(profile, latest.executor_action if latest is not None else None)
        await self._supervisor.start_execution(context, action)
        return {}

    async def send_queued(self, attempt_id: uuid.UUID) -> None:
        """Send the attempt's queued follow-up draft once nothing of the attempt runs (spec §5.3 step 4)."""
        if self._drafts is None or self._core.attempt_busy(attempt_id):
            return
        draft = await asyncio.to_thread(self._drafts.take_queued, attempt_id)
        if draft is None:
            return
        try:
            await self.follow_up(
                attempt_id,
                {"prompt": draft["prompt"], "variant": draft["variant"], "image_ids": draft.get("image_ids")},
            )
        except Exception:
            log.exception("sending the queued follow-up of attempt %s failed", attempt_id)
            await asyncio.to_thread(self._drafts.release_sending, attempt_id)

    async def _retry_reset(
        self, context: AttemptContext, process_id: uuid.UUID, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Reset the worktree to before ``process_id`` and drop it and every later process."""

        def target() -> ExecutionProcess:
            process = ExecutionProcess.get_or_none(
                (ExecutionProcess.id == process_id) & (ExecutionProcess.task_attempt == context.attempt_id)
            )
            if process is None:
                raise ServiceError(f"Process {process_id} does not belong to this attempt")
            return process

        process = await self._core.db_call(target)
        await asyncio.gather(*(self._stopper.stop(lv) for lv in self._core.of_attempt(context.attempt_id)))
        oid = process.before_head_commit
        await self._repos.sync(context.checkout)
        view = self._repos.view(context.checkout)
        reset_needed = bool(oid) and await asyncio.to_thread(self._git.head_oid, view) != oid
        applied = False
        if oid and reset_needed and body.get("perform_git_reset") is not False:
            dirty = not await asyncio.to_thread(self._git.is_clean, view)
            if not dirty or body.get("force_when_dirty"):
                await self._repos.reset_hard(context.checkout, oid)
                applied = True

        def drop() -> int:
            with self._core.db.atomic():
                return int(
                    ExecutionProcess.update(dropped=True, updated_at=utc_now())
                    .where(
                        (ExecutionProcess.task_attempt == context.attempt_id)
                        & (ExecutionProcess.created_at >= process.created_at)
                    )
                    .execute()
                )

        deleted = await self._core.db_call(drop)
        return {
            "deleted_count": deleted,
            "git_reset_needed": reset_needed,
            "git_reset_applied": applied,
            "target_before_oid": oid,
        }

    async def replace_process(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        """``POST …/replace-process``: reset and drop as a retry does, then run the prompt (no cleanup)."""
        context = await self._preparation.ensure_worktree(attempt_id)
        result = await self._retry_reset(context, uuid.UUID(body["process_id"]), body)
        latest, session_id = await self._core.db_call(self._latest_agent, attempt_id)
        base = latest.executor_action["typ"]["executor_profile_id"] if latest else {"executor": "CLAUDE_CODE"}
        profile = parse_profile(
            self._profiles, {"executor": base["executor"], "variant": body.get("variant")}
        )
        prompt = body.get("prompt") or ""
        action = (
            actions.follow_up(prompt, session_id, profile) if session_id else actions.initial(prompt, profile)
        )
        process = await self._supervisor.start_execution(context, action)
        return {**result, "new_execution_id": process["id"]}

    async def start_dev_server(self, attempt_id: uuid.UUID) -> None:
        """Stop the project's running dev servers, then run its dev script (spec §1.5)."""
        context = await self._preparation.ensure_worktree(attempt_id)
        dev_script = await self._core.db_call(lambda: Project.get_by_id(context.project_id).dev_script)
        if not dev_script or not dev_script.strip():
            raise ServiceError("No dev server script configured for this project")
        running = [
            lv
            for lv in list(self._core.live.values())
            if lv.run_reason == "devserver" and lv.context.project_id == context.project_id
        ]
        await asyncio.gather(*(self._stopper.stop(lv) for lv in running))
        await self._preparation.ensure_container(context)
        await self._supervisor.start_execution(context, actions.script(dev_script, actions.DEV_SERVER))
