"""Why a container's process died: its cgroup's OOM-kill and refused-fork counters.

A process killed for memory, or one whose child was, or one whose fork was refused at the pids limit,
often exits with a code that says nothing of it; the container cgroup's counters are the only witness.
They are per container, so the last value seen is kept on the container
(:class:`~anyon.services.runners.container_table.KnownContainer`) to attribute only new events.
"""

from __future__ import annotations

from typing import NamedTuple

from anyon.services.runners.base import RunnerError
from anyon.services.runners.container_table import ContainerTable
from anyon.services.runners.engine_client import EngineClient

# the container cgroup's OOM-kill counter and its refused-fork counter, cgroup v2 or v1 layout
_CGROUP_PROBE = (
    "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null; "
    "echo --pids; cat /sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events 2>/dev/null; true"
)


class CgroupCounts(NamedTuple):
    oom_kills: int
    pids_max: int


class CgroupFaults:
    """Reads a container's counters through the Engine and tells what changed since the last look."""

    def __init__(self, engine: EngineClient, table: ContainerTable) -> None:
        self._engine = engine
        self._table = table

    async def counts(self, container_id: str) -> CgroupCounts | None:
        """The container cgroup's OOM-kill and refused-fork counters; ``None`` when unreadable.

        Unreadable includes a container whose pids limit is still exhausted: the probe itself cannot
        start then (the engine names that case from the process's stderr instead).
        """
        try:
            out = await self._engine.run_quiet(container_id, ["/bin/sh", "-c", _CGROUP_PROBE], timeout=10)
        except RunnerError:
            return None
        memory, _, pids = out.decode(errors="replace").partition("--pids")
        return CgroupCounts(_counter(memory, "oom_kill"), _counter(pids, "max"))

    async def since_last_look(self, container_id: str) -> tuple[bool, bool]:
        """(an OOM kill, a refused fork) in this container since we last looked.

        Counters are per container: when two processes of one attempt end together, the first to look
        is told of both (the message then reaches the attempt, if not always the exact process).
        """
        container = self._table.by_id(container_id)
        counts = await self.counts(container_id)
        if counts is None:
            return False, False
        seen = CgroupCounts(container.oom_kills, container.pids_max) if container else CgroupCounts(0, 0)
        if container is not None:
            container.oom_kills, container.pids_max = counts
        return counts.oom_kills > seen.oom_kills, counts.pids_max > seen.pids_max


def _counter(text: str, key: str) -> int:
    """The value of ``key N`` in a cgroup events file's text, 0 when absent."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0
