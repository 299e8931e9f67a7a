"""Runners start execution processes: on the host (local mode) or in per-attempt containers (cloud).

The Docker runner is imported lazily (``from anyon.services.runners.docker import DockerRunner``) so
local mode never needs the docker package.
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
