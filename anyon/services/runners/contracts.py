"""What the rest of the server may ask of a cloud runner, as protocols (no Docker import needed).

:class:`~anyon.services.runners.base.Runner` starts processes (both modes). In cloud mode the runner
also owns per-attempt containers: the execution engine asks for them through
:class:`ContainerProvisioner`, the maintenance loop reconciles them, the warm pool reserves attempt ids,
and the attempt's git work runs in them (:class:`~anyon.services.board.attempt_repos.AttemptShell`).
:class:`ContainerRunner` is all of that together: the type of ``Services.docker``. Any runner that
satisfies it (the Docker and Swarm runners) can serve cloud mode. :class:`ReconcileResult` is what a
reconcile reports; it lives here, with the protocols, so nothing that reads it imports a runner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from anyon.config.model import DockerSettings
from anyon.services.runners.base import Runner


class ReconcileResult(NamedTuple):
    adopted: list[str]
    removed: list[str]
    #: attempt id -> signals sent by the sweep of its container (attempts whose container was swept)
    swept: dict[str, int] = {}
    #: worktree paths (from the labels) of the containers removed because their attempt is gone
    worktrees: list[str] = []


class ContainerProvisioner(Protocol):
    """Makes sure an attempt's container exists before a command runs in it; sweeps what it left."""

    async def ensure_container(self, attempt_id: str, worktree_path: str, objects_dir: str) -> str: ...

    async def remove_container(self, attempt_id: str) -> bool: ...

    async def kill_strays(self, attempt_id: str) -> int: ...

    def unswept(self, attempt_id: str) -> bool: ...


class ContainerRunner(Runner, ContainerProvisioner, Protocol):
    """A runner of per-attempt containers: cloud mode's runner, provisioner and git shell in one."""

    settings: DockerSettings
    #: attempt ids whose containers are kept although no attempt row has them yet (warm slots)
    reserved_ids: set[str]

    async def run_captured(
        self,
        attempt_id: str,
        argv: list[str],
        cwd: str,
        env: dict[str, str] | None = None,
        *,
        timeout: float = 300.0,
        limit: int = 64 * 1024 * 1024,
    ) -> tuple[int, bytes, bytes]: ...

    async def reconcile(
        self, live_attempt_ids: set[str] | Callable[[], Awaitable[set[str]]]
    ) -> ReconcileResult: ...

    async def close(self) -> None: ...
