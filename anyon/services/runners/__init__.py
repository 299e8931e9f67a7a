"""Runners start execution processes: on the host (local mode) or in per-attempt containers (cloud).

Cloud mode has two: the Docker runner (every container on one Engine, ``docker.runner = "engine"``) and
the Swarm runner (``docker.runner = "swarm"``: a Swarm manager places each attempt's container on a node,
commands run through that node's Engine; ``swarm.py``, ``docs/scale-out.md``). Both are imported lazily
(``from anyon.services.runners.docker import DockerRunner``) so local mode never needs the docker package.
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
