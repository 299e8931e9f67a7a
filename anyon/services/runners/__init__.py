"""Runners start execution processes: on the host (local mode) or in per-attempt containers (cloud).

Owns the one runner interface both modes share (``base.py``), the host runner (``host.py``,
``environment.py``), and cloud mode's containers: what the rest of the server may ask of them
(``contracts.py``: ``ContainerRunner``, ``ContainerProvisioner``, ``ReconcileResult``) and two
implementations, both imported lazily so local mode never needs the docker package.

The Docker runner (``docker.py``, ``docker.runner = "engine"``: every container on one Engine) is a facade
over one module per concern: ``engine_client.py`` (the Engine API client), ``container_spec.py`` (names,
labels, environment, mounts, hardening), ``container_table.py`` (what this run knows of each container),
``container_lifecycle.py`` (create, adopt, remove), ``container_sweep.py`` (reconcile and sweep),
``container_exec.py`` and ``docker_process.py`` (commands and their exec protocol), ``prestart.py``
(launchers started ahead), ``agent_home_sync.py`` (the agent home copied into containers),
``cgroup_faults.py`` (memory and pids-limit kills), ``secrets_dir.py``, ``engine_stream.py`` and
``tls_stream.py`` (exec streams). ``warm.py`` keeps containers ready ahead of attempts.

The Swarm runner (``swarm.py``, ``docker.runner = "swarm"``; ``docs/scale-out.md``) places each attempt's
container on a node through the manager (``swarm_manager.py``, ``swarm_spec.py``, ``swarm_reconcile.py``)
and runs its commands through that node's Engine (``swarm_node.py``: the Docker runner pointed at a node;
``swarm_tls.py``: its client certificate, followed through rotations); ``swarm_warm.py`` keeps warm
containers to a per-node quota.

May import: ``anyon.config``, ``anyon.services.project_pools`` (the warm pool's per-project bookkeeping)
and, under ``TYPE_CHECKING`` only, the git services the warm pool uses (``anyon.services.git``). Nothing
here imports the execution engine, the board or the API; the Docker modules never import the Swarm ones.
"""

from anyon.services.runners.base import (
    ChunkStream,
    ExecutableNotFound,
    Runner,
    RunnerError,
    RunningProcess,
    StdinClosed,
)
from anyon.services.runners.host import HostProcess, HostRunner

__all__ = [
    "ChunkStream",
    "ExecutableNotFound",
    "HostProcess",
    "HostRunner",
    "Runner",
    "RunnerError",
    "RunningProcess",
    "StdinClosed",
]
