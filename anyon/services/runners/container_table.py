"""What this server run knows of each attempt's container, shared by the runner's collaborators.

**Adopted containers start empty** — after a crash (kill -9, power loss) a container can still run the
agents the previous server run started, writing the worktree with nobody capturing their output. Their
output cannot be reattached (the exec streams died with the server), so every container this server run
did not create is *swept* — every process but its init and its idle command is killed — before the
start-up repair marks its processes ``failed`` and before any command of this run starts in it. A process
whose exec stream or status was lost while the Engine was unreachable marks its attempt for the same
sweep, run as soon as the Engine answers again (periodic reconcile, Stop, next command). The set of
attempts awaiting that sweep lives here, beside the containers, so creating, sweeping and running
commands all read one truth (:mod:`~anyon.services.runners.container_lifecycle`,
:mod:`~anyon.services.runners.container_sweep`, :mod:`~anyon.services.runners.container_exec`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class KnownContainer:
    id: str
    worktree: str
    git_dir: str
    oom_kills: int = 0  # the container's oom_kill counter last seen, to attribute new kills
    pids_max: int = 0  # its pids.events "max" counter (forks refused at the pids limit) last seen


@dataclass
class ContainerTable:
    """Attempt id → its container; the attempts that need a sweep; one lock per attempt."""

    containers: dict[str, KnownContainer] = field(default_factory=dict)
    #: attempts whose container may run processes nobody supervises (see "Adopted containers start
    #: empty"): swept before their next command, by Stop and by the periodic reconcile
    unswept: set[str] = field(default_factory=set)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, attempt_id: str) -> asyncio.Lock:
        return self.locks.setdefault(attempt_id, asyncio.Lock())

    def by_id(self, container_id: str) -> KnownContainer | None:
        return next((c for c in self.containers.values() if c.id == container_id), None)

    def drop(self, attempt_id: str) -> None:
        """The attempt's container is gone: forget it, and that it needed a sweep."""
        self.containers.pop(attempt_id, None)
        self.unswept.discard(attempt_id)
