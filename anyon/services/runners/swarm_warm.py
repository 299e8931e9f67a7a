"""A per-node quota of warm containers on a swarm (``docker.warm_pool_per_node``).

Why: a warm container reserves its CPUs and memory on its node like a running attempt. Swarm's scheduler
spreads tasks, but nothing stops it from filling one node with warm containers while attempts wait for
room there; with a quota no node holds more than its share of capacity held back on purpose.

How: a warm container is placed like an attempt's (same reservations, same ``docker.swarm_constraints``),
plus one ``node.id!=<id>`` constraint per node that already holds the quota. The warm containers counted
are those this server run placed and that no attempt has claimed yet (``reserved_ids``, see
:mod:`anyon.services.runners.warm`). Placements of warm containers are made one at a time, so two fills
cannot both take a node's last place. When every node that is ready and active holds the quota, the
placement is refused at once rather than left pending until ``docker.swarm_task_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from anyon.services.runners.base import RunnerError
from anyon.services.runners.swarm_manager import SwarmManager


class WarmQuota:
    """Which nodes may take one more warm container; see the module docstring."""

    def __init__(self, per_node: int, swarm: SwarmManager, reserved_ids: set[str]) -> None:
        self.per_node = per_node
        self._swarm = swarm
        self._reserved = reserved_ids
        #: held from choosing the constraints until the warm container runs (and is counted)
        self.lock = asyncio.Lock()

    def applies(self, attempt_id: str) -> bool:
        """The container is a warm one (no attempt yet) and a quota is set."""
        return self.per_node > 0 and attempt_id in self._reserved

    def counts(self) -> Counter[str]:
        """Warm containers per node id, as this server run placed them."""
        placed = self._swarm.placed.items()
        return Counter(engine.node_id for attempt_id, engine in placed if attempt_id in self._reserved)

    async def constraints(self) -> list[str]:
        """The constraints keeping a new warm container off full nodes; refused if every node is full."""
        full = {node for node, count in self.counts().items() if count >= self.per_node}
        if not full:
            return []
        nodes = await self._swarm.nodes()
        open_nodes = [
            n
            for n in nodes
            if n.get("Status", {}).get("State") == "ready"
            and n.get("Spec", {}).get("Availability") == "active"
            and n.get("ID") not in full
        ]
        if not open_nodes:
            raise RunnerError(
                f"every node of the swarm holds docker.warm_pool_per_node = {self.per_node} warm "
                "containers already; no more are made until one is used or removed"
            )
        return [f"node.id!={node}" for node in sorted(full)]
