"""ExecutionService: attempts, their process chains, log capture, commits and statuses (spec §5.3, §5.4).

Everything here is mode-independent: the only difference between local and cloud mode is the
:class:`~anyon.services.runners.base.Runner` it is given and the optional container provisioner that
prepares an attempt's container before its first command.

Concurrency model: one asyncio task ("supervisor") per execution process owns it from queueing to
exit — it waits for a slot, spawns, pumps output into the in-memory store and the append-only DB log,
records the exit, commits, and starts the next action of the chain. Blocking work (database, git)
runs in worker threads.

Faults (cloud mode): a process whose runtime stops answering mid-run ends ``failed`` (or ``killed`` when
a Stop asked for it) with the reason in its log, and its task leaves ``inprogress``; the runner sweeps its
container (kills what is left) as soon as the Engine answers again. Stop, follow-up and task delete that
need the Engine raise :class:`~anyon.services.runners.base.RunnerUnavailable` (HTTP 503) *after* settling
what they could, and write nothing half. Stop always stops: processes the database says run but nothing
here supervises (left by a crash) are marked ``killed`` and the attempt's container is swept.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from anyon.config.model import ExecutionSettings
from anyon.services.approvals import ApprovalService
from anyon.services.attempt_repos import AttemptRepos, Checkout, SharedAttemptRepos
from anyon.services.changes import ChangeNotifier
from anyon.services.checkouts_ahead import AheadCheckouts
from anyon.services.db import queries
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess, ExecutorSession, Project, Task, TaskAttempt, utc_now
from anyon.services.db.serialize import attempt_json, process_json
from anyon.services.drafts import DraftService
from anyon.services.errors import Conflict, NotFound, ServiceError
from anyon.services.executions import actions, agent_setup, launch, supervision
from anyon.services.executions.slots import ExecutionSlots
from anyon.services.executions.timings import StartTimings
from anyon.services.executors import Command, ExecutorProfileId, ExecutorProfiles, ProfileError
from anyon.services.git import GitService
from anyon.services.git.errors import GitServiceError
from anyon.services.git.isolation import objects_dir
from anyon.services.images import ImageService
from anyon.services.launchers import AgentLauncher
from anyon.services.logcap import LogCap
from anyon.services.logstore import LogStore
from anyon.services.memory import release_memory
from anyon.services.msgstore import MsgStore
from anyon.services.normalizer import COMMAND_PREFIX, LogNormalizer, normalizer_for
from anyon.services.normalizer.failures import no_answer_message
from anyon.services.paths import PathPolicy
from anyon.services.protocols import AgentClient, ProtocolSink, RunRequest, client_for
from anyon.services.ready_worktrees import resolve as resolve_claim
from anyon.services.runners.base import (
    Runner,
    RunnerError,
    RunnerUnavailable,
    RunningProcess,
)
from anyon.services.tasks import TaskService
from anyon.services.user_config import UserConfigService
from anyon.services.worktrees import WorktreeManager

if TYPE_CHECKING:
    from anyon.services.ready_worktrees import Claim, ReadyWorktrees
    from anyon.services.runners.warm import WarmPool, WarmSlot

log = logging.getLogger(__name__)

#: Seconds a start waits for the attempt's first output before refilling the warm pool anyway.
_REFILL_AFTER_OUTPUT_SECONDS = 2.0

_LOG_FLUSH_SECONDS = 0.1
_LOG_FLUSH_BYTES = 256 * 1024
#: Seconds after a process ended before freed heap is returned: its live readers finish sending first.
_RELEASE_MEMORY_AFTER_SECONDS = 1.0


class ContainerProvisioner(Protocol):
    """Cloud mode: makes sure an attempt's container exists before a command runs in it."""

    async def ensure_container(self, attempt_id: str, worktree_path: str, objects_dir: str) -> str: ...

    async def remove_container(self, attempt_id: str) -> bool: ...

    async def kill_strays(self, attempt_id: str) -> int: ...

    def unswept(self, attempt_id: str) -> bool: ...


@dataclass
class _WorktreePlan:
    """The rows and paths an attempt's start reads once, before its worktree exists."""

    attempt: TaskAttempt
    task: Task
    project: Project
    worktree: str
    objects_dir: str


@dataclass
class AttemptContext:
    """What a process of an attempt needs, read once from the database."""

    attempt_id: uuid.UUID
    task_id: uuid.UUID
    project_id: uuid.UUID
    repo_path: str
    worktree: str
    branch: str
    cleanup_script: str | None
    task_title: str

    @property
    def checkout(self) -> Checkout:
        return Checkout(self.attempt_id, self.repo_path, self.worktree, self.branch)


@dataclass
class LiveProcess:
    process_id: uuid.UUID
    context: AttemptContext
    run_reason: str
    action: dict[str, Any]
    store: MsgStore
    handle: RunningProcess | None = None
    supervisor: asyncio.Task[None] | None = None
    stop_requested: bool = False
    normalizer: LogNormalizer | None = None
    #: the agent's protocol client (it writes to the agent and answers its requests), if it has one
    protocol: AgentClient | None = None
    session_saved: bool = False
    first_output_seen: bool = False
    pending_logs: list[tuple[str, str]] = field(default_factory=list)
    pending_bytes: int = 0
    #: set at the process's first byte of output (the queue notice before its spawn does not count)
    output: asyncio.Event = field(default_factory=asyncio.Event)
    #: why the server ended the process itself (a timeout): it then ends ``failed``, not ``killed``
    failure_reason: str | None = None
    queued_at: float | None = None
    queue_flush: asyncio.Task[Any] | None = None
    stderr_line_open: bool = False
    stderr_tail: str = ""
    pids_limit_noted: bool = False
    # one flush at a time: batches reach the log store in the order they were emitted
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flush_timer: asyncio.TimerHandle | None = None
    cap: LogCap = field(default_factory=lambda: LogCap(0))  # executions.log_cap_bytes: head and tail kept
    command: Command | None = None  # a coding agent's command, before the launcher picks its binary
    failure_acted: bool = False  # the agent's output reported a failure (failures.py): the run fails


class ExecutionService:
    def __init__(
        self,
        database: Database,
        changes: ChangeNotifier,
        logstore: LogStore,
        profiles: ExecutorProfiles,
        git: GitService,
        worktrees: WorktreeManager,
        runner: Runner,
        settings: ExecutionSettings,
        user_config: UserConfigService,
        *,
        provisioner: ContainerProvisioner | None = None,
        drafts: DraftService | None = None,
        shell: str | None = None,
        warm_pool: WarmPool | None = None,
        repos: AttemptRepos | None = None,
        paths: PathPolicy | None = None,
        on_attempt_finished: Callable[[uuid.UUID, uuid.UUID], None] | None = None,
        images: ImageService | None = None,
        approvals: ApprovalService | None = None,
        launcher: AgentLauncher | None = None,
        agent_env: dict[str, str] | None = None,
        ready_worktrees: ReadyWorktrees | None = None,
        slots: ExecutionSlots | None = None,
    ) -> None:
        self._images = images  # copies a task's images into the worktree and rewrites prompt links
        self._on_attempt_finished = on_attempt_finished  # (attempt id, last process id): notifications
        self._db = database
        self._approvals = approvals
        self._repos = repos or SharedAttemptRepos(git, worktrees)
        self._changes = changes
        self._logstore = logstore
        self._profiles = profiles
        self._git = git
        self._worktrees = worktrees
        self._runner = runner
        self._settings = settings
        self._user_config = user_config
        self._provisioner = provisioner
        self._drafts = drafts
        # a project's stored path is checked against the roots again each time an attempt uses it
        self._paths = paths or PathPolicy()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shell = shell or ("/bin/sh" if provisioner else os.environ.get("SHELL") or "sh")
        self._slots = slots or ExecutionSlots(settings.max_concurrent)
        self._live: dict[uuid.UUID, LiveProcess] = {}
        self.timings = StartTimings()
        self._background: set[asyncio.Task[Any]] = set()
        # a warm container mounts its folder before the checkout: only `git worktree add` fills it in place
        usable_pool = warm_pool is not None and warm_pool.enabled and worktrees.fills_existing_dir
        self.warm_pool = warm_pool if provisioner is not None and usable_pool else None
        self._claimed: dict[uuid.UUID, WarmSlot] = {}  # slot taken by an attempt row, not started yet
        self._first_output: dict[uuid.UUID, asyncio.Event] = {}
        self._launcher = launcher or AgentLauncher()
        self._found = launch.FoundPrograms()  # CLIs found in attempts' containers
        # extra variables of coding agents only (HOME = the agent home in local mode)
        self._agent_env = dict(agent_env or {})
        # local mode: checkouts made ahead of the attempts that take them (ready_worktrees.py)
        usable_ready = ready_worktrees is not None and ready_worktrees.enabled and provisioner is None
        self.ready_worktrees = ready_worktrees if usable_ready else None
        self._ready: dict[uuid.UUID, Claim] = {}  # taken by an attempt row, not started yet
        self._ahead = AheadCheckouts(worktrees)

    # ------------------------------------------------------------------------------------------
    # status and lookup
    # ------------------------------------------------------------------------------------------
    def store_for(self, process_id: uuid.UUID) -> MsgStore | None:
        live = self._live.get(process_id)
        return live.store if live else None

    def status(self) -> dict[str, int]:
        return {"running": self._slots.running, "queued": self._slots.queued, "live": len(self._live)}

    async def _db_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        def call() -> Any:
            with self._db.connection():
                return fn(*args)

        return await asyncio.to_thread(call)

    def _spawn_background(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ------------------------------------------------------------------------------------------
    # starting attempts
    # ------------------------------------------------------------------------------------------
    def _profile(self, value: Any) -> ExecutorProfileId:
        try:
            return self._profiles.profile_id_from_json(value)
        except (ProfileError, ValueError, TypeError) as exc:
            raise ServiceError(f"Invalid executor profile: {exc}") from None

    def _insert_attempt(
        self, task_id: uuid.UUID, profile: ExecutorProfileId, base_branch: str
    ) -> TaskAttempt:
        claimed: list[WarmSlot] = []
        ready: list[Claim] = []
        try:
            return self._insert_attempt_row(task_id, profile, base_branch, claimed, ready)
        except BaseException:
            for slot in claimed:  # the row was not written: the slot goes back to nobody
                self._release_slot(slot)
            for checkout in ready:
                if self.ready_worktrees is not None:
                    self.ready_worktrees.release(checkout)
            raise

    def _release_slot(self, slot: WarmSlot) -> None:
        if self.warm_pool is not None and self._loop is not None:
            pool = self.warm_pool
            self._loop.call_soon_threadsafe(
                lambda: self._spawn_background(pool.discard(slot), f"warm-discard:{slot.attempt_id}")
            )

    def _insert_attempt_row(
        self,
        task_id: uuid.UUID,
        profile: ExecutorProfileId,
        base_branch: str,
        claimed: list[WarmSlot],
        ready: list[Claim],
    ) -> TaskAttempt:
        with self._db.atomic():
            task = Task.get_or_none(Task.id == task_id)
            if task is None:
                raise ServiceError(f"Task {task_id} does not exist")
            project = Project.get_by_id(task.project_id)
            self._paths.check_stored(project.git_repo_path)
            if not self._git.is_repository(project.git_repo_path):
                raise ServiceError(f"Project path {project.git_repo_path} is no longer a git repository")
            if not self._git.branch_exists(project.git_repo_path, base_branch):
                raise ServiceError(f"Branch '{base_branch}' does not exist in {project.git_repo_path}")
            attempt_id = uuid.uuid4()
            if self.warm_pool is not None:
                # a warm container's attempt id was chosen when it was provisioned
                slot = self.warm_pool.claim(str(project.id))
                if slot is not None:
                    claimed.append(slot)
                    attempt_id = slot.attempt_id
            elif self.ready_worktrees is not None:
                # a ready worktree's attempt id was chosen when it was made
                checkout = self.ready_worktrees.claim(str(project.id), project.git_repo_path, base_branch)
                if checkout is not None:
                    ready.append(checkout)
                    attempt_id = checkout.attempt_id
            prefix = self._user_config.get().get("git_branch_prefix", "vk")
            branch = self._worktrees.branch_name(prefix, attempt_id, task.title)
            attempt = TaskAttempt.create(
                id=attempt_id,
                task=task.id,
                executor=profile.executor,
                target_branch=base_branch,
                branch=branch,
                container_ref=None,
            )
        if claimed:
            self._claimed[attempt_id] = claimed[0]
        if ready:
            self._ready[attempt_id] = ready[0]
        return attempt

    async def create_attempt(self, task_id: uuid.UUID, profile_json: Any, base_branch: str) -> dict[str, Any]:
        """``POST /api/task-attempts``: insert the attempt, answer with the row, start it afterwards."""
        profile = self._profile(profile_json)
        if not base_branch or not base_branch.strip():
            raise ServiceError("base_branch cannot be empty")
        self._loop = asyncio.get_running_loop()
        requested = time.monotonic()
        attempt = await self._db_call(self._insert_attempt, task_id, profile, base_branch.strip())
        self.timings.mark(attempt.id, "requested", requested)
        payload = attempt_json(attempt)
        self._spawn_background(self._start_attempt_logged(attempt.id, profile), f"start-attempt:{attempt.id}")
        return payload

    async def create_and_start(
        self, tasks: TaskService, task_body: dict[str, Any], profile_json: Any, base_branch: str
    ) -> dict[str, Any]:
        """``POST /api/tasks/create-and-start``: all or nothing, then start and report the task.

        The profile is checked before anything is written, and the task and its attempt rows are
        inserted in one transaction, so a bad executor or base branch leaves no task, no attempt, no
        branch and no worktree (those are made by the start, which only runs on a committed attempt).
        """
        profile = self._profile(profile_json)
        if not base_branch or not base_branch.strip():
            raise ServiceError("base_branch cannot be empty")
        self._loop = asyncio.get_running_loop()
        branch = base_branch.strip()

        def insert(task: Task) -> TaskAttempt:
            return self._insert_attempt(task.id, profile, branch)

        task, attempt = await asyncio.to_thread(tasks.create_with, task_body, insert)
        assert attempt is not None
        await self._start_attempt_logged(attempt.id, profile)
        result: dict[str, Any] = await self._db_call(queries.task_with_status, uuid.UUID(task["id"]))
        return result

    async def _start_attempt_logged(self, attempt_id: uuid.UUID, profile: ExecutorProfileId) -> None:
        try:
            await self.start_attempt(attempt_id, profile)
        except (RunnerError, GitServiceError, ServiceError, OSError):
            pass  # recorded on the attempt's first process and logged by start_attempt
        except Exception:
            log.exception("starting attempt %s failed", attempt_id)

    def _load_context(self, attempt_id: uuid.UUID) -> AttemptContext:
        attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
        if attempt is None:
            raise NotFound(f"Task attempt {attempt_id} not found")
        task = Task.get_by_id(attempt.task_id)
        project = Project.get_by_id(task.project_id)
        self._paths.check_stored(project.git_repo_path)
        worktree = attempt.container_ref or self._worktrees.worktree_path(attempt.id, task.title)
        return AttemptContext(
            attempt_id=attempt.id,
            task_id=task.id,
            project_id=project.id,
            repo_path=project.git_repo_path,
            worktree=worktree,
            branch=attempt.branch,
            cleanup_script=project.cleanup_script,
            task_title=task.title,
        )

    def _plan_worktree(
        self, attempt_id: uuid.UUID, reserve: bool, slot: WarmSlot | None = None
    ) -> _WorktreePlan:
        """Read what the start needs; with ``reserve``, create the empty worktree folder already.

        With a warm slot, the folder is the slot's (reserved when it was provisioned).
        """
        with self._db.connection():
            attempt = TaskAttempt.get_by_id(attempt_id)
            task = Task.get_by_id(attempt.task_id)
            project = Project.get_by_id(task.project_id)
        self._paths.check_stored(project.git_repo_path)
        shared = objects_dir(project.git_repo_path) if reserve or slot else ""
        if slot is not None and slot.objects_dir == shared:
            return _WorktreePlan(attempt, task, project, slot.folder, shared)
        worktree = self._worktrees.worktree_path(attempt.id, task.title)
        if reserve:
            self._worktrees.reserve(worktree)
        return _WorktreePlan(attempt, task, project, worktree, shared)

    def _prepare_worktree(
        self, attempt_id: uuid.UUID, plan: _WorktreePlan | None = None, claim: Claim | None = None
    ) -> tuple[AttemptContext, str | None, str]:
        """Branch and worktree, copied files, container_ref; returns the context, setup script, prompt.

        With a ready worktree that can still be used, the branch is made there instead of a checkout.
        """
        ready = resolve_claim(claim)  # waits for a checkout being made ahead, if that is what was taken
        plan = plan or self._plan_worktree(attempt_id, reserve=False)
        attempt, task, project, worktree = plan.attempt, plan.task, plan.project, plan.worktree
        keep = ready is not None and ready.folder == worktree  # a warm container mounts the folder
        if ready is not None and self._ahead.adopt(
            ready, attempt.branch, attempt.target_branch, keep_folder=keep
        ):
            worktree = ready.folder
        else:
            self._worktrees.create(project.git_repo_path, attempt.branch, worktree, attempt.target_branch)
        if project.copy_files:
            self._worktrees.copy_files(project.git_repo_path, worktree, project.copy_files)
        with self._db.connection():
            TaskAttempt.update(container_ref=worktree, updated_at=utc_now()).where(
                TaskAttempt.id == attempt_id
            ).execute()
            context = self._load_context(attempt_id)
        prompt = actions.task_prompt(task.title, task.description)
        if self._images is not None:
            prompt = self._images.place_for_task(task.id, worktree, prompt)
        return context, project.setup_script, prompt

    async def start_attempt(self, attempt_id: uuid.UUID, profile: ExecutorProfileId) -> dict[str, Any]:
        """Worktree (and container) ready, then setup script → agent → cleanup script (spec §5.3).

        When the attempt cannot start (the container runtime is unreachable, the image is missing, the
        worktree cannot be made), the first process is recorded as ``failed`` with the reason in its log
        and the task goes to ``inreview``: the UI shows why, instead of an attempt that never moves.
        """
        try:
            return await self._start_attempt(attempt_id, profile)
        except (RunnerError, GitServiceError, ServiceError, OSError) as exc:
            await self._record_start_failure(attempt_id, profile, exc)
            raise

    async def _record_start_failure(
        self, attempt_id: uuid.UUID, profile: ExecutorProfileId, exc: Exception
    ) -> None:
        message = f"Failed to start execution: {getattr(exc, 'message', None) or exc}"
        log.warning("attempt %s: %s", attempt_id, message)

        def record() -> uuid.UUID | None:
            with self._db.connection(), self._db.atomic():
                attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
                if attempt is None:
                    return None
                task = Task.get_by_id(attempt.task_id)
                project = Project.get_by_id(task.project_id)
                action = actions.initial(
                    actions.task_prompt(task.title, task.description),
                    profile,
                    actions.cleanup_or_none(project.cleanup_script),
                )
                if project.setup_script and project.setup_script.strip():
                    action = actions.script(project.setup_script, actions.SETUP, action)
                now = utc_now()
                process = ExecutionProcess.create(
                    task_attempt=attempt.id,
                    status="failed",
                    run_reason=actions.run_reason_of(action),
                    executor_action=action,
                    completed_at=now,
                )
                self._logstore.append(process.id, "stderr", message + "\n")
                Task.update(status="inreview", updated_at=now).where(Task.id == task.id).execute()
                return process.id

        process_id = await asyncio.to_thread(record)
        if process_id is not None:
            await asyncio.to_thread(self._changes.process_changed, process_id)

    async def _start_attempt(self, attempt_id: uuid.UUID, profile: ExecutorProfileId) -> dict[str, Any]:
        slot = self._claimed.pop(attempt_id, None)
        if self._provisioner is not None and self._worktrees.fills_existing_dir:
            context, setup_script, prompt = await self._prepare_concurrently(
                attempt_id, self._provisioner, slot
            )
        else:
            ready = self._ready.pop(attempt_id, None)
            context, setup_script, prompt = await asyncio.to_thread(
                self._prepare_worktree, attempt_id, None, ready
            )
            self.timings.mark(attempt_id, "worktree_ready")
            if self.ready_worktrees is not None:
                pool = self.ready_worktrees
                project_id, repo_path = str(context.project_id), context.repo_path
                self._after_first_output(attempt_id, lambda: pool.wanted(project_id, repo_path))
            await self._ensure_container(context)
            self.timings.mark(attempt_id, "container_ready")
        agent = actions.initial(prompt, profile, actions.cleanup_or_none(context.cleanup_script))
        first = (
            actions.script(setup_script, actions.SETUP, agent)
            if setup_script and setup_script.strip()
            else agent
        )
        return await self._start_execution(context, first)

    async def _prepare_concurrently(
        self, attempt_id: uuid.UUID, provisioner: ContainerProvisioner, slot: WarmSlot | None = None
    ) -> tuple[AttemptContext, str | None, str]:
        """Cloud mode: provision the container while ``git worktree add`` fills the worktree.

        The empty folder is created first so the container's bind mount has its source; git then checks
        out into that same directory, which the container sees fill up. Path identity is unchanged: the
        container mounts exactly the attempt's worktree and the project's object store (read-only) at
        their host paths.
        If the worktree fails, the container is removed again; if the container fails, the worktree stays
        (as when they were made one after the other) and the start fails with the container's error.

        With a warm slot (see :class:`~anyon.services.runners.warm.WarmPool`) the container is running
        already and the checkout goes into the slot's folder; the pool refills once the attempt printed.
        """
        pool = self.warm_pool
        if slot is not None and pool is not None and not await asyncio.to_thread(pool.usable, slot):
            log.warning("warm slot %s is no longer usable; provisioning afresh", slot.folder)
            self._spawn_background(pool.discard(slot), f"warm-discard:{attempt_id}")
            slot = None
        try:
            plan = await asyncio.to_thread(self._plan_worktree, attempt_id, True, slot)
        except BaseException:
            if slot is not None and pool is not None:
                self._spawn_background(pool.discard(slot), f"warm-discard:{attempt_id}")
            raise
        if slot is not None and pool is not None:
            if plan.worktree == slot.folder:
                pool.adopted(slot)
            else:  # the project's repository moved since the slot was made
                self._spawn_background(pool.discard(slot), f"warm-discard:{attempt_id}")
        if pool is not None:
            self._refill_after_output(pool, attempt_id, plan)

        ready = slot.checkout if slot is not None and plan.worktree == slot.folder else None

        async def worktree() -> tuple[AttemptContext, str | None, str]:
            result = await asyncio.to_thread(self._prepare_worktree, attempt_id, plan, ready)
            self.timings.mark(attempt_id, "worktree_ready")
            return result

        async def container() -> None:
            await provisioner.ensure_container(str(attempt_id), plan.worktree, plan.objects_dir)
            self.timings.mark(attempt_id, "container_ready")

        prepared, provisioned = await asyncio.gather(worktree(), container(), return_exceptions=True)
        if isinstance(prepared, BaseException):
            try:
                await provisioner.remove_container(str(attempt_id))
            except Exception:
                log.exception("removing the container of attempt %s after a failed start failed", attempt_id)
            raise prepared
        if isinstance(provisioned, BaseException):
            raise provisioned
        return prepared

    def _refill_after_output(self, pool: WarmPool, attempt_id: uuid.UUID, plan: _WorktreePlan) -> None:
        """Keep the project's warm pool full, once the attempt printed: nothing delays its first byte."""
        project = plan.project
        self._after_first_output(
            attempt_id, lambda: pool.wanted(str(project.id), project.git_repo_path, plan.objects_dir)
        )

    def _after_first_output(self, attempt_id: uuid.UUID, refill: Callable[[], None]) -> None:
        """Run ``refill`` once the attempt printed (or after a short wait), on the event loop."""
        event = self._first_output[attempt_id] = asyncio.Event()

        async def wait_then_refill() -> None:
            try:
                await asyncio.wait_for(event.wait(), _REFILL_AFTER_OUTPUT_SECONDS)
            except TimeoutError:
                pass
            finally:
                self._first_output.pop(attempt_id, None)
            refill()

        self._spawn_background(wait_then_refill(), f"refill:{attempt_id}")

    async def _ensure_container(self, context: AttemptContext) -> None:
        if self._provisioner is None:
            return
        shared = await asyncio.to_thread(objects_dir, context.repo_path)
        await self._provisioner.ensure_container(str(context.attempt_id), context.worktree, shared)

    async def ensure_worktree(self, attempt_id: uuid.UUID) -> AttemptContext:
        """Recreate the worktree if it vanished (spec §6 "recreate on demand"), and its container."""
        context: AttemptContext = await self._db_call(self._load_context, attempt_id)
        await asyncio.to_thread(self._worktrees.ensure, context.repo_path, context.branch, context.worktree)
        return context

    # ------------------------------------------------------------------------------------------
    # one execution process
    # ------------------------------------------------------------------------------------------
    def _head_or_none(self, context: AttemptContext) -> str | None:
        try:
            return self._git.head_oid(self._repos.view(context.checkout))
        except GitServiceError:
            return None

    def _insert_process(
        self, context: AttemptContext, action: dict[str, Any], run_reason: str
    ) -> ExecutionProcess:
        before = self._head_or_none(context)
        with self._db.connection(), self._db.atomic():
            if run_reason != "devserver":
                Task.update(status="inprogress", updated_at=utc_now()).where(
                    Task.id == context.task_id
                ).execute()
            process = ExecutionProcess.create(
                task_attempt=context.attempt_id,
                status="running",
                run_reason=run_reason,
                executor_action=action,
                before_head_commit=before,
            )
            if actions.is_agent(action):
                ExecutorSession.create(
                    task_attempt=context.attempt_id,
                    execution_process=process.id,
                    prompt=action["typ"]["prompt"],
                    session_id=None,
                )
        return process

    async def _start_execution(self, context: AttemptContext, action: dict[str, Any]) -> dict[str, Any]:
        run_reason = actions.run_reason_of(action)
        process = await asyncio.to_thread(self._insert_process, context, action, run_reason)
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
        self._live[process.id] = live
        live.supervisor = self._spawn_background(self._supervise(live), f"process:{process.id}")
        await asyncio.to_thread(self._changes.process_changed, process.id)
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
        try:
            await self._slots.acquire(lambda position: self._note_queued(live, position))
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
                    live.protocol.attach(live.handle, self._protocol_sink(live))
                if live.run_reason == "codingagent":
                    self.timings.mark(live.context.attempt_id, "spawned")
            except (RunnerError, ProfileError, OSError) as exc:
                await self._spawn_failed(live, exc)
                return
            if live.stop_requested:  # stopped while it was being spawned
                await live.handle.stop(self._settings.stop_escalation_seconds)
            limits = supervision.limits_for(live.run_reason, self._settings)
            watchdog = self._watch(live, live.handle, limits) if limits.any else None
            try:
                await asyncio.gather(
                    self._pump(live, live.handle.stdout, "stdout"),
                    self._pump(live, live.handle.stderr, "stderr"),
                )
                try:
                    exit_code = await live.handle.wait()
                except RunnerError as exc:  # the runtime stopped answering: the exit is unknown
                    self._emit(live, "stderr", f"Lost track of the process: {exc}\n")
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
                self._slots.release()
        await self._finish(live, exit_code, oom=oom)

    def _note_queued(self, live: LiveProcess, position: int) -> None:
        live.queued_at = time.monotonic()
        self._emit(
            live,
            "stdout",
            f"Waiting for a free execution slot, position {position} in the queue "
            f"(executions.max_concurrent = {self._settings.max_concurrent})...\n",
            from_server=True,
        )
        # stored now, not with the first output: the log of a waiting process is read while it waits
        live.queue_flush = self._spawn_background(self._flush_logs(live), f"queued-log:{live.process_id}")

    async def _note_dequeued(self, live: LiveProcess) -> None:
        """The wait is over: say so, and make ``started_at`` the real start rather than the queueing."""
        waited = time.monotonic() - (live.queued_at or time.monotonic())
        if live.queue_flush is not None:
            await asyncio.gather(live.queue_flush, return_exceptions=True)  # keeps the log in order
        self._emit(
            live, "stdout", f"A slot is free after {waited:.1f} s of waiting; starting.\n", from_server=True
        )

        def restart_clock() -> None:
            now = utc_now()
            ExecutionProcess.update(started_at=now, updated_at=now).where(
                ExecutionProcess.id == live.process_id
            ).execute()

        await self._db_call(restart_clock)
        await asyncio.to_thread(self._changes.process_changed, live.process_id)

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
        self._note(live, message)
        await self._flush_logs(live)
        await handle.stop(self._settings.stop_escalation_seconds)

    async def _settle_watchdog(self, live: LiveProcess, watchdog: asyncio.Task[None]) -> None:
        """A watchdog that fired finishes its stop; one that did not is cancelled."""
        if live.failure_reason is None:
            watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)

    def _note(self, live: LiveProcess, message: str) -> None:
        """A line from the server in the process's log: stderr, so the normalised log shows an error."""
        prefix = "\n" if live.stderr_line_open else ""
        self._emit(live, "stderr", f"{prefix}{message}\n", from_server=True)

    async def _launch(self, live: LiveProcess, command: Command) -> list[str]:
        """Pick the agent's binary (launchers.py), then show the command line and record it."""
        chosen = await launch.resolve(
            self._launcher,
            self._runner,
            command,
            live.context.worktree,
            str(live.context.attempt_id),
            self._found,
        )
        self._emit(live, "stdout", f"{COMMAND_PREFIX}{chosen.display}\n", from_server=True)
        live.action = launch.action_with_command(live.action, chosen)

        def record() -> None:
            ExecutionProcess.update(executor_action=live.action, updated_at=utc_now()).where(
                ExecutionProcess.id == live.process_id
            ).execute()

        await self._db_call(record)
        await asyncio.to_thread(self._changes.process_changed, live.process_id)
        return chosen.argv

    async def _fail_fast(self, live: LiveProcess, message: str) -> None:
        """The agent said it cannot work (not signed in, no network): end it now, not at a timeout."""
        handle = live.handle
        if live.stop_requested or handle is None or handle.returncode is not None:
            return
        log.warning("process %s: %s", live.process_id, message)
        await self._flush_logs(live)
        try:
            await handle.stop(self._settings.stop_escalation_seconds)
        except RunnerError as exc:
            log.warning("stopping process %s failed: %s", live.process_id, exc)

    async def _spawn_failed(self, live: LiveProcess, exc: Exception) -> None:
        reason = launch.spawn_failure_message(live.command, exc)
        message = f"Failed to start execution: {reason}"
        log.warning("process %s: %s", live.process_id, message)
        # every normaliser reads this line: a missing CLI becomes a setup_required entry (spec §2.6)
        self._emit(live, "stderr", message + "\n")
        await self._flush_logs(live)
        await self._record_exit(live, "failed", None)
        await self._close(live, finalize=live.run_reason != "devserver")

    def _emit(self, live: LiveProcess, stream: str, text: str, *, from_server: bool = False) -> None:
        """One chunk of output, through the log cap (which may hold it back as part of the tail)."""
        for kept_stream, kept in live.cap.accept(stream, text):
            self._emit_now(live, kept_stream, kept, from_server=from_server)

    def _emit_now(self, live: LiveProcess, stream: str, text: str, *, from_server: bool = False) -> None:
        """One chunk of output: live readers, the normaliser, and the batch for the DB log.

        ``from_server``: a line the server writes (queue notice, timeout, …), not the process's output:
        it is neither the start timings' first byte nor scanned for the process's errors.
        """
        if live.normalizer is not None and not live.first_output_seen and not from_server:
            live.first_output_seen = True
            self.timings.mark(live.context.attempt_id, "first_byte")
        if self._first_output:
            waiting = self._first_output.pop(live.context.attempt_id, None)
            if waiting is not None:
                waiting.set()
        if stream == "stdout":
            live.store.push_stdout(text)
        else:
            live.store.push_stderr(text)
        if live.normalizer is not None:
            ops = (
                live.normalizer.feed_stdout(text) if stream == "stdout" else live.normalizer.feed_stderr(text)
            )
            if ops:
                live.store.push_patch(ops)
            failure = live.normalizer.failure
            if failure is not None and not live.failure_acted and not live.normalizer.answered:
                live.failure_acted = True
                self._spawn_background(self._fail_fast(live, failure.message), f"fail:{live.process_id}")
            if live.normalizer.session_id and not live.session_saved:
                live.session_saved = True
                live.store.push_session_id(live.normalizer.session_id)
                self._spawn_background(
                    self._db_call(self._save_session, live.process_id, live.normalizer.session_id, None),
                    f"session:{live.process_id}",
                )
        live.pending_logs.append((stream, text))
        live.pending_bytes += len(text)
        if stream == "stderr":
            live.stderr_line_open = not text.endswith("\n")
            if not from_server and not live.pids_limit_noted:
                self._scan_for_pids_limit(live, text)

    def _scan_for_pids_limit(self, live: LiveProcess, text: str) -> None:
        window = live.stderr_tail + text
        live.stderr_tail = window[-supervision.TAIL_CHARS :]
        if supervision.names_pids_exhaustion(window):
            live.pids_limit_noted = True
            self._note(live, supervision.PIDS_LIMIT_MESSAGE)

    async def _pump(self, live: LiveProcess, chunks: Any, stream: str) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        loop = asyncio.get_running_loop()
        last_flush = loop.time()
        async for chunk in chunks:
            if chunk and not live.output.is_set():
                live.output.set()
            text = decoder.decode(chunk)
            if text:
                self._emit(live, stream, text)
                if live.protocol is not None and stream == "stdout":
                    live.protocol.on_stdout(text)
            if live.pending_bytes >= _LOG_FLUSH_BYTES or loop.time() - last_flush >= _LOG_FLUSH_SECONDS:
                await self._flush_logs(live)
                last_flush = loop.time()
            elif live.pending_logs and live.flush_timer is None:
                # a process that falls quiet still has its last output stored within the flush interval
                live.flush_timer = loop.call_later(_LOG_FLUSH_SECONDS, self._flush_later, live)
        tail = decoder.decode(b"", final=True)
        if tail:
            self._emit(live, stream, tail)
        await self._flush_logs(live)

    def _flush_later(self, live: LiveProcess) -> None:
        live.flush_timer = None
        self._spawn_background(self._flush_logs(live), f"flush-logs:{live.process_id}")

    async def _flush_logs(self, live: LiveProcess) -> None:
        async with live.flush_lock:
            if not live.pending_logs:
                return
            batch, live.pending_logs, live.pending_bytes = live.pending_logs, [], 0
            await self._db_call(self._logstore.append_many, live.process_id, batch)

    def _save_session(self, process_id: uuid.UUID, session_id: str | None, summary: str | None) -> None:
        updates: dict[Any, Any] = {ExecutorSession.updated_at: utc_now()}
        if session_id is not None:
            updates[ExecutorSession.session_id] = session_id
        if summary is not None:
            updates[ExecutorSession.summary] = summary
        ExecutorSession.update(updates).where(ExecutorSession.execution_process == process_id).execute()

    def _set_status(self, process_id: uuid.UUID, status: str, exit_code: int | None) -> bool:
        """Record the end of a process unless it was already ended (a stop marks it killed first)."""
        now = utc_now()
        with self._db.atomic():
            changed = (
                ExecutionProcess.update(status=status, exit_code=exit_code, completed_at=now, updated_at=now)
                .where((ExecutionProcess.id == process_id) & (ExecutionProcess.status == "running"))
                .execute()
            )
        return bool(changed)

    async def _record_exit(self, live: LiveProcess, status: str, exit_code: int | None) -> None:
        await self._db_call(self._set_status, live.process_id, status, exit_code)

    async def _release_tail(self, live: LiveProcess) -> None:
        """A capped log: the omitted marker, then the held-back tail, paced like live output.

        The tail is up to half the cap at once; emitted in one go it would overrun the live window and
        every follower would rebuild its view from the store. Yielding after each chunk lets followers
        send as it goes; the store gets it in batches as from the pumps.
        """
        for i, (stream, text) in enumerate(live.cap.close()):
            self._emit_now(live, stream, text)
            if live.pending_bytes >= _LOG_FLUSH_BYTES:
                await self._flush_logs(live)
            elif i % 4 == 3:
                await asyncio.sleep(0)

    async def _finish(self, live: LiveProcess, exit_code: int | None, *, oom: bool) -> None:
        """The process ended: status, summary, commit, next action or finalisation (spec §5.3 "On exit")."""
        if live.protocol is not None:
            await live.protocol.finish()
        await self._release_tail(live)
        if live.normalizer is not None:
            ops = live.normalizer.finish()
            if ops:
                live.store.push_patch(ops)
        if oom:
            self._emit(live, "stderr", "Process was killed: it exceeded its memory limit.\n")
        self._note_outcome(live, exit_code, oom=oom)
        refused = self._protocol_failure(live, exit_code)
        await self._flush_logs(live)
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
                self._note(live, no_answer_message(executor, exit_code))
                await self._flush_logs(live)
        if live.normalizer is not None:
            await self._db_call(self._save_session, live.process_id, None, live.normalizer.summary)
        next_action = live.action.get("next_action")
        committed = False
        may_continue = not killed and (status == "completed" or live.run_reason == "cleanupscript")
        # the commit lands before the status does: whoever sees "completed" also sees the agent's commit
        if may_continue and live.run_reason in ("codingagent", "cleanupscript"):
            committed = await self._commit(live)
        await self._record_exit(live, status, exit_code)
        started_next = False
        run_next = live.run_reason != "codingagent" or committed
        if may_continue and next_action is not None and run_next:
            try:
                await self._start_execution(live.context, next_action)
                started_next = True
            except Exception:
                log.exception("starting the next action of process %s failed", live.process_id)
        await self._close(live, finalize=not started_next and live.run_reason != "devserver")

    def _protocol_sink(self, live: LiveProcess) -> ProtocolSink:
        def log_line(text: str) -> None:
            self._emit(live, "stdout", text, from_server=True)
            self._spawn_background(self._flush_logs(live), f"flush-logs:{live.process_id}")

        return ProtocolSink(live.store.push_patch, log_line, lambda message: self._note(live, message))

    def _protocol_failure(self, live: LiveProcess, exit_code: int | None) -> bool:
        """A clean exit the agent's protocol client refuses as a success (no answer, an error result)."""
        if live.protocol is None or live.stop_requested or live.failure_reason is not None or exit_code != 0:
            return False
        reason = live.protocol.failure()
        if reason is None:
            return False
        if live.output.is_set():  # a silent process has its note already (see _note_outcome)
            self._note(live, reason)
        return True

    def _note_outcome(self, live: LiveProcess, exit_code: int | None, *, oom: bool) -> None:
        """What the exit code alone does not say: a silent success, a child OOM kill, a pids limit."""
        handle = live.handle
        if handle is None or live.stop_requested:
            return
        if handle.child_oom_killed and not oom:
            self._note(live, supervision.CHILD_OOM_MESSAGE)
        if handle.pids_limit_hit and not live.pids_limit_noted:
            live.pids_limit_noted = True
            self._note(live, supervision.PIDS_LIMIT_MESSAGE)
        silent = not live.output.is_set() and live.failure_reason is None
        if live.run_reason == "codingagent" and exit_code == 0 and silent:
            self._note(live, supervision.NO_OUTPUT_MESSAGE)

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
            self._emit(live, "stderr", f"Failed to commit changes: {exc}\n")
            await self._flush_logs(live)
            return False
        return sha is not None

    async def _close(self, live: LiveProcess, *, finalize: bool) -> None:
        """after_head_commit, task status, then end the live stream and forget the process."""

        def close_rows() -> None:
            after = self._head_or_none(live.context)
            with self._db.connection(), self._db.atomic():
                ExecutionProcess.update(after_head_commit=after).where(
                    ExecutionProcess.id == live.process_id
                ).execute()
                if finalize and not queries.has_running_process(live.context.task_id):
                    Task.update(status="inreview", updated_at=utc_now()).where(
                        Task.id == live.context.task_id
                    ).execute()

        try:
            await asyncio.to_thread(close_rows)
            await asyncio.to_thread(self._changes.process_changed, live.process_id)
        finally:
            live.store.finish()
            self._live.pop(live.process_id, None)
            self._spawn_background(self._release_memory_later(), f"release-memory:{live.process_id}")
        if finalize and self._on_attempt_finished is not None:
            self._on_attempt_finished(live.context.attempt_id, live.process_id)
        if finalize and self._drafts is not None:
            self._spawn_background(
                self.send_queued(live.context.attempt_id), f"queued:{live.context.attempt_id}"
            )

    async def _release_memory_later(self) -> None:
        """A process ended: once its buffers are dropped, give the freed heap back to the OS (see memory)."""
        await asyncio.sleep(_RELEASE_MEMORY_AFTER_SECONDS)
        await asyncio.to_thread(release_memory)

    # ------------------------------------------------------------------------------------------
    # stopping
    # ------------------------------------------------------------------------------------------
    async def stop_process(self, process_id: uuid.UUID) -> None:
        """``POST /api/execution-processes/{id}/stop``: mark killed, then stop the whole process tree."""
        live = self._live.get(process_id)
        if live is None:
            exists = await self._db_call(
                lambda: ExecutionProcess.get_or_none(ExecutionProcess.id == process_id)
            )
            if exists is None:
                raise NotFound(f"Execution process {process_id} not found")
            raise Conflict("Execution process is not running")
        await self._stop(live)

    async def _stop(self, live: LiveProcess) -> None:
        if live.stop_requested:
            if live.supervisor is not None:
                await asyncio.shield(live.supervisor)
            return
        live.stop_requested = True
        await self._record_exit(live, "killed", None)
        if live.protocol is not None:
            await self._interrupt(live, live.protocol)
        if live.handle is not None:
            try:
                await live.handle.stop(self._settings.stop_escalation_seconds)
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
                    asyncio.shield(live.handle.wait()), self._settings.stop_escalation_seconds
                )

    async def stop_attempt(self, attempt_id: uuid.UUID) -> None:
        """``POST /api/task-attempts/{id}/stop``: every running process of the attempt becomes ``killed``.

        Also what nobody here supervises: rows left ``running`` are marked ``killed`` (the task settles),
        and in cloud mode the attempt's container is swept when this server had nothing running in it or
        lost track of something there. When the runtime does not answer, the statuses are settled
        anyway and :class:`RunnerUnavailable` is raised (503) — the sweep follows once it answers.
        """
        await self._db_call(self._load_context, attempt_id)
        mine = [lv for lv in list(self._live.values()) if lv.context.attempt_id == attempt_id]
        results = await asyncio.gather(*(self._stop(lv) for lv in mine), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        settled = await self._db_call(self._kill_unsupervised, attempt_id)
        if settled:
            await asyncio.gather(*(asyncio.to_thread(self._changes.process_changed, pid) for pid in settled))
        provisioner = self._provisioner
        sweep = provisioner is not None and (not mine or failures or provisioner.unswept(str(attempt_id)))
        if sweep and not any(lv.context.attempt_id == attempt_id for lv in self._live.values()):
            assert provisioner is not None
            await provisioner.kill_strays(str(attempt_id))
        for failure in failures:
            raise failure

    def _kill_unsupervised(self, attempt_id: uuid.UUID) -> list[uuid.UUID]:
        """Rows of the attempt left ``running`` with no supervisor here become ``killed``; settle the task."""
        supervised = [pid for pid, lv in self._live.items() if lv.context.attempt_id == attempt_id]
        now = utc_now()
        with self._db.atomic():
            query = ExecutionProcess.select(ExecutionProcess.id).where(
                (ExecutionProcess.task_attempt == attempt_id) & (ExecutionProcess.status == "running")
            )
            if supervised:
                query = query.where(ExecutionProcess.id.not_in(supervised))
            ids = [row.id for row in query]
            if ids:
                ExecutionProcess.update(status="killed", completed_at=now, updated_at=now).where(
                    ExecutionProcess.id.in_(ids) & (ExecutionProcess.status == "running")
                ).execute()
            task_id = TaskAttempt.get_by_id(attempt_id).task_id
            if not queries.has_running_process(task_id):
                Task.update(status="inreview", updated_at=now).where(
                    (Task.id == task_id) & (Task.status == "inprogress")
                ).execute()
        return ids

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

        for attempt_id in await self._db_call(attempt_ids):
            if provisioner.unswept(attempt_id):
                await provisioner.kill_strays(attempt_id)

    async def stop_all(self) -> None:
        """Shutdown: nothing the server started is left running (warm containers are removed)."""
        await asyncio.gather(*(self._stop(lv) for lv in list(self._live.values())), return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.warm_pool is not None:
            for slot in self._claimed.values():
                await self.warm_pool.discard(slot)
            self._claimed.clear()
            await self.warm_pool.close()
        if self.ready_worktrees is not None:
            for checkout in self._ready.values():
                await asyncio.to_thread(self.ready_worktrees.release, checkout)
            self._ready.clear()
            await self.ready_worktrees.close()

    # ------------------------------------------------------------------------------------------
    # follow-up, retry, dev server
    # ------------------------------------------------------------------------------------------
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
        context = await self.ensure_worktree(attempt_id)
        # the container first: with the Engine away this refuses (503) before anything is reset or written
        await self._ensure_container(context)
        if body.get("retry_process_id"):
            await self._retry_reset(context, uuid.UUID(body["retry_process_id"]), body)
        if any(
            lv.context.attempt_id == attempt_id and lv.run_reason != "devserver" for lv in self._live.values()
        ):
            raise Conflict("A process of this attempt is still running; stop it before sending a follow-up")
        latest, session_id = await self._db_call(self._latest_agent, attempt_id)
        if latest is None:
            raise ServiceError("No coding agent has run in this attempt yet")
        if self._images is not None:  # the follow-up's images join the task's; all are placed again
            prompt = await asyncio.to_thread(
                self._images.attach_and_place, context.task_id, image_ids, context.worktree, prompt
            )
        base_profile = latest.executor_action["typ"]["executor_profile_id"]
        profile = self._profile({"executor": base_profile["executor"], "variant": body.get("variant")})
        cleanup = actions.cleanup_or_none(context.cleanup_script)
        if session_id:
            action = actions.follow_up(prompt, session_id, profile, cleanup)
        else:
            action = actions.initial(prompt, profile, cleanup)
        process = await self._start_execution(context, action)
        if self._drafts is not None:
            await asyncio.to_thread(self._drafts.clear, attempt_id, "follow_up")
            if body.get("retry_process_id"):
                await asyncio.to_thread(self._drafts.clear, attempt_id, "retry")
        return process

    async def run_agent_setup(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        """``POST …/run-agent-setup``: the executor's setup helper, then its last request again."""
        profile = self._profile(body.get("executor_profile_id"))
        context = await self.ensure_worktree(attempt_id)
        await self._ensure_container(context)
        if self.attempt_busy(attempt_id):
            raise Conflict("A process of this attempt is still running; stop it before running the setup")
        latest, _session = await self._db_call(self._latest_agent, attempt_id)
        action = agent_setup.setup_action(profile, latest.executor_action if latest is not None else None)
        await self._start_execution(context, action)
        return {}

    def attempt_busy(self, attempt_id: uuid.UUID) -> bool:
        return any(
            lv.context.attempt_id == attempt_id and lv.run_reason != "devserver" for lv in self._live.values()
        )

    async def send_queued(self, attempt_id: uuid.UUID) -> None:
        """Send the attempt's queued follow-up draft once nothing of the attempt runs (spec §5.3 step 4)."""
        if self._drafts is None or self.attempt_busy(attempt_id):
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

        process = await self._db_call(target)
        await asyncio.gather(
            *(
                self._stop(lv)
                for lv in list(self._live.values())
                if lv.context.attempt_id == context.attempt_id
            )
        )
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
            with self._db.atomic():
                return int(
                    ExecutionProcess.update(dropped=True, updated_at=utc_now())
                    .where(
                        (ExecutionProcess.task_attempt == context.attempt_id)
                        & (ExecutionProcess.created_at >= process.created_at)
                    )
                    .execute()
                )

        deleted = await self._db_call(drop)
        return {
            "deleted_count": deleted,
            "git_reset_needed": reset_needed,
            "git_reset_applied": applied,
            "target_before_oid": oid,
        }

    async def replace_process(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        """``POST …/replace-process``: reset and drop as a retry does, then run the prompt (no cleanup)."""
        context = await self.ensure_worktree(attempt_id)
        result = await self._retry_reset(context, uuid.UUID(body["process_id"]), body)
        latest, session_id = await self._db_call(self._latest_agent, attempt_id)
        base = latest.executor_action["typ"]["executor_profile_id"] if latest else {"executor": "CLAUDE_CODE"}
        profile = self._profile({"executor": base["executor"], "variant": body.get("variant")})
        prompt = body.get("prompt") or ""
        action = (
            actions.follow_up(prompt, session_id, profile) if session_id else actions.initial(prompt, profile)
        )
        process = await self._start_execution(context, action)
        return {**result, "new_execution_id": process["id"]}

    async def start_dev_server(self, attempt_id: uuid.UUID) -> None:
        """Stop the project's running dev servers, then run its dev script (spec §1.5)."""
        context = await self.ensure_worktree(attempt_id)
        dev_script = await self._db_call(lambda: Project.get_by_id(context.project_id).dev_script)
        if not dev_script or not dev_script.strip():
            raise ServiceError("No dev server script configured for this project")
        running = [
            lv
            for lv in list(self._live.values())
            if lv.run_reason == "devserver" and lv.context.project_id == context.project_id
        ]
        await asyncio.gather(*(self._stop(lv) for lv in running))
        await self._ensure_container(context)
        await self._start_execution(context, actions.script(dev_script, actions.DEV_SERVER))

    # ------------------------------------------------------------------------------------------
    # teardown
    # ------------------------------------------------------------------------------------------
    def project_active(self, project_id: uuid.UUID) -> None:
        """The project was just created, opened or given a task: warm a container for its next attempt.

        Fire and forget (the caller answers at once); a no-op without a warm pool. This is what makes
        the first attempt of a project as quick as the later ones: the UI opens the project and the user
        writes the task before an attempt is started.
        """
        if self.warm_pool is None and self.ready_worktrees is None:
            return
        pool, ready = self.warm_pool, self.ready_worktrees

        async def warm() -> None:
            def lookup() -> tuple[str, str] | None:
                with self._db.connection():
                    project = Project.get_or_none(Project.id == project_id)
                if project is None or not self._git.is_repository(project.git_repo_path):
                    return None
                return project.git_repo_path, objects_dir(project.git_repo_path) if pool else ""

            found = await asyncio.to_thread(lookup)
            if found is not None and pool is not None:
                pool.wanted(str(project_id), *found)
            if found is not None and ready is not None:
                ready.wanted(str(project_id), found[0])

        self._spawn_background(warm(), f"warm-project:{project_id}")

    async def project_deleted(self, project_id: uuid.UUID) -> None:
        """A deleted project's warm containers go at once, not at the next idle reap."""
        if self.warm_pool is not None:
            await self.warm_pool.drop_project(str(project_id))
        if self.ready_worktrees is not None:
            await self.ready_worktrees.drop_project(str(project_id))

    async def cleanup_attempts_later(self, attempts: list[TaskAttempt], repo_path: str | None) -> None:
        """Schedule :meth:`cleanup_attempts` in the background; the caller answers at once."""
        if attempts:
            self._spawn_background(self.cleanup_attempts(attempts, repo_path), "cleanup-attempts")

    async def cleanup_attempts(self, attempts: list[TaskAttempt], repo_path: str | None) -> None:
        """After a task delete: remove containers and worktrees of its attempts (in the background)."""
        for attempt in attempts:
            if self._provisioner is not None:
                try:
                    await self._provisioner.remove_container(str(attempt.id))
                except RunnerUnavailable as exc:
                    log.warning(
                        "the container of attempt %s is left for the next reconcile: %s", attempt.id, exc
                    )
                except Exception:
                    log.exception("removing the container of attempt %s failed", attempt.id)
            if attempt.container_ref:
                try:
                    await asyncio.to_thread(self._worktrees.remove, repo_path, attempt.container_ref)
                except Exception:
                    log.exception("removing the worktree of attempt %s failed", attempt.id)
