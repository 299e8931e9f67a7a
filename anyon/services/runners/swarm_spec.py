"""The Swarm service of one attempt: the single-VM container's hardening, as the service API says it.

Differences from :meth:`~anyon.services.runners.container_spec.ContainerSpec.host_config_kwargs`, each
forced by the service API (engine 20.10, API 1.41) and explained in ``docs/scale-out.md``: no ``none``
network (a task on no network, on a node without a bridge — checked after placement), no
``no-new-privileges`` (set per command by ``setpriv``), tmpfs mounts without an owner (mode 1777
instead). Reservations equal the limits, so a node never holds more agents than it can run. The
environment, names and labels are the single-VM container's own (``container_spec.py``).
"""

from __future__ import annotations

from typing import Any

from anyon.config.model import DockerSettings
from anyon.services.runners.container_spec import CONTAINER_HOME, IDLE_COMMAND
from anyon.services.runners.secrets_dir import CONTAINER_SECRETS_DIR

#: Task states after which a task never runs again.
ENDED_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})


def task_template(
    s: DockerSettings,
    user: str,
    env: dict[str, str],
    labels: dict[str, str],
    worktree: str,
    git_dir: str,
    secrets_dir: str,
    *,
    extra_mounts: list[Any] | None = None,
    extra_constraints: list[str] | None = None,
) -> Any:
    """A docker-py ``TaskTemplate`` for the attempt's service (``extra_mounts``: the agent home's;
    ``extra_constraints``: placement constraints besides ``docker.swarm_constraints``)."""
    from docker.types import ContainerSpec, Mount, Placement, Resources, RestartPolicy, TaskTemplate

    tmpfs = {"source": None, "type": "tmpfs", "tmpfs_size": s.tmpfs_size, "tmpfs_mode": 0o1777}
    mounts = [
        Mount(target=worktree, source=worktree, type="bind", read_only=False),
        Mount(target=git_dir, source=git_dir, type="bind", read_only=True),
        Mount(target=CONTAINER_SECRETS_DIR, source=secrets_dir, type="bind", read_only=True),
        Mount(target="/tmp", **tmpfs),
        Mount(target=CONTAINER_HOME, **tmpfs),
        *(extra_mounts or []),
    ]
    spec = ContainerSpec(
        s.image,
        args=IDLE_COMMAND,
        env=env,
        workdir=worktree,
        user=user,
        labels=labels,
        mounts=mounts,
        read_only=s.read_only_rootfs,
        init=True,
        cap_drop=["ALL"],
        stop_grace_period=int(s.stop_grace_seconds * 1e9),
    )
    nano_cpus = int(s.cpus * 1e9) if s.cpus > 0 else None
    memory = s.memory if s.memory > 0 else None
    resources = Resources(
        cpu_limit=nano_cpus, mem_limit=memory, cpu_reservation=nano_cpus, mem_reservation=memory
    )
    resources.setdefault("Limits", {})["Pids"] = s.pids_limit
    return TaskTemplate(
        spec,
        resources=resources,
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=[*s.swarm_constraints, *(extra_constraints or [])]),
        networks=None if s.network == "none" else [{"Target": s.network}],
    )
