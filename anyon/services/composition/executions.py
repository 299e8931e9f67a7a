"""How the execution engine is made: its parts (services/executions/), each given what it works with.

The engine is a set of small classes that call one another (start, supervision, finish, stop, conversation,
cleanup); this is the one place that knows the order they are built in and which part gets which.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

from anyon.config.model import AnyonConfig
from anyon.services.agents.approvals import ApprovalService
from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.board.attempt_repos import AttemptRepos
from anyon.services.board.drafts import DraftService
from anyon.services.board.images import ImageService
from anyon.services.board.user_config import UserConfigService
from anyon.services.composition.agents import agent_env_for, launcher_for
from anyon.services.executions.cleanup import AttemptCleanup
from anyon.services.executions.conversation import Conversation
from anyon.services.executions.core import EngineCore, FinishedHook
from anyon.services.executions.engine import EngineParts, ExecutionService
from anyon.services.executions.finish import ProcessFinisher
from anyon.services.executions.head_start import HeadStarts
from anyon.services.executions.output import ProcessOutput
from anyon.services.executions.preparation import AttemptPreparation
from anyon.services.executions.records import ProcessRecords
from anyon.services.executions.slots import ExecutionSlots
from anyon.services.executions.start import AttemptStarter
from anyon.services.executions.stopping import ProcessStopper
from anyon.services.executions.supervisor import ProcessSupervisor
from anyon.services.git import GitService
from anyon.services.git.paths import PathPolicy
from anyon.services.git.worktrees import WorktreeManager
from anyon.services.runners.base import Runner
from anyon.services.runners.contracts import ContainerProvisioner

if TYPE_CHECKING:
    from anyon.services.git.ready_worktrees import ReadyWorktrees
    from anyon.services.runners.warm import WarmPool


def _slots_for(config: AnyonConfig) -> ExecutionSlots:
    """The execution slots: the server-wide limit, with a per-account share in cloud mode with accounts
    (executions/user_slots.py)."""
    settings = config.executions
    if not config.is_cloud or settings.max_concurrent_per_user <= 0:
        return ExecutionSlots(settings.max_concurrent)
    from anyon.services.executions.user_slots import UserSlots

    return UserSlots(settings.max_concurrent, settings.max_concurrent_per_user)


def executions_for(
    config: AnyonConfig,
    core: EngineCore,
    profiles: ExecutorProfiles,
    git: GitService,
    worktrees: WorktreeManager,
    runner: Runner,
    user_config: UserConfigService,
    *,
    provisioner: ContainerProvisioner | None,
    warm_pool: WarmPool | None,
    ready_worktrees: ReadyWorktrees | None,
    repos: AttemptRepos,
    paths: PathPolicy,
    drafts: DraftService | None,
    images: ImageService | None,
    approvals: ApprovalService | None,
    on_attempt_finished: FinishedHook | None = None,
) -> ExecutionService:
    """The execution engine's parts (services/executions/), each given what it works with.

    A warm pool needs a container to mount a folder ``git worktree add`` then fills in place; ready
    worktrees are local mode's. An attempt with nothing left to run notifies, then sends its queued
    follow-up.
    """
    usable_pool = warm_pool is not None and warm_pool.enabled and worktrees.fills_existing_dir
    usable_ready = ready_worktrees is not None and ready_worktrees.enabled and provisioner is None
    head_starts = HeadStarts(
        core,
        git,
        warm_pool=warm_pool if provisioner is not None and usable_pool else None,
        ready_worktrees=ready_worktrees if usable_ready else None,
    )
    preparation = AttemptPreparation(
        core, worktrees, head_starts, provisioner=provisioner, paths=paths, images=images
    )
    records = ProcessRecords(core, git, repos)
    output = ProcessOutput(core, records)
    finisher = ProcessFinisher(core, output, records, repos)
    supervisor = ProcessSupervisor(
        core,
        output,
        records,
        finisher,
        runner,
        profiles,
        _slots_for(config),
        shell="/bin/sh" if provisioner else os.environ.get("SHELL") or "sh",
        launcher=launcher_for(config),
        agent_env=agent_env_for(config),
        approvals=approvals,
    )
    stopper = ProcessStopper(core, records, preparation, provisioner)
    conversation = Conversation(
        core,
        preparation,
        supervisor,
        stopper,
        profiles=profiles,
        git=git,
        repos=repos,
        images=images,
        drafts=drafts,
    )
    if on_attempt_finished is not None:
        finisher.finished_hooks.append(on_attempt_finished)
    if drafts is not None:

        def send_queued(attempt_id: uuid.UUID, _process_id: uuid.UUID) -> None:
            core.spawn_background(conversation.send_queued(attempt_id), f"queued:{attempt_id}")

        finisher.finished_hooks.append(send_queued)
    starter = AttemptStarter(
        core,
        head_starts,
        preparation,
        supervisor,
        records,
        profiles=profiles,
        git=git,
        worktrees=worktrees,
        user_config=user_config,
        paths=paths,
    )
    parts = EngineParts(
        core=core,
        head_starts=head_starts,
        preparation=preparation,
        starter=starter,
        supervisor=supervisor,
        stopper=stopper,
        conversation=conversation,
        cleanup=AttemptCleanup(core, worktrees, provisioner),
    )
    return ExecutionService(parts)
