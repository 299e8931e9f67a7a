"""The Swarm runner's reconcile and node report: what runs on the swarm against what should.

Same rules as the single-VM reconcile (:mod:`anyon.services.runners.container_sweep`), over services, then
over every node's containers. It works on the manager's view (:class:`~anyon.services.runners.swarm_manager.
SwarmManager`), which the runner (:mod:`anyon.services.runners.swarm`) shares, so it never imports the runner.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from anyon.services.runners.base import RunnerError
from anyon.services.runners.container_spec import LABEL_ATTEMPT, instance_filters
from anyon.services.runners.contracts import ReconcileResult
from anyon.services.runners.secrets_dir import SecretsDirs
from anyon.services.runners.swarm_manager import SwarmManager

log = logging.getLogger(__name__)

#: The label Swarm puts on a task's container: the id of the service it belongs to.
SERVICE_ID_LABEL = "com.docker.swarm.service.id"


async def reconcile(
    swarm: SwarmManager,
    secrets: SecretsDirs,
    live_attempt_ids: set[str] | Callable[[], Awaitable[set[str]]],
    reserved_ids: set[str],
) -> ReconcileResult:
    """As the single-VM reconcile, over services; then containers on nodes whose service is gone.

    A live attempt's service whose task no longer runs (its container stopped) or whose node the
    manager reports down is removed too: the next command of the attempt places a new one. A node that
    is ready in the swarm but does not answer us is left alone until the next run.
    """
    adopted: list[str] = []
    removed: set[str] = set()
    swept: dict[str, int] = {}
    worktrees: list[str] = []
    services = await swarm.services()
    if callable(live_attempt_ids):
        live_attempt_ids = await live_attempt_ids()
    live = set(live_attempt_ids) | reserved_ids
    for service in services:
        labels = service.get("Spec", {}).get("Labels", {})
        attempt_id = labels.get(LABEL_ATTEMPT, "")
        if attempt_id in live:
            async with swarm.lock(attempt_id):
                placement = await swarm.placement(service)
                if placement is None or await swarm.node_state(placement.node_id) in ("down", "gone"):
                    await swarm.remove_service(attempt_id, service["ID"])  # nothing runs it any more
                    continue
                engine = await swarm.reachable(placement.node_id)
                if engine is None:  # ready in the swarm but silent to us: maybe a blip, never a kill
                    log.warning("the node running attempt %s does not answer; retried later", attempt_id)
                    continue
                if swarm.placed.get(attempt_id) is not engine:
                    swarm.placed[attempt_id] = engine
                    adopted.append(attempt_id)
                # a container of an earlier run is marked for a sweep
                await engine.containers.find(attempt_id)
                if engine.unswept(attempt_id):
                    try:
                        swept[attempt_id] = await engine.kill_strays(attempt_id)
                    except RunnerError as exc:
                        log.warning("could not sweep the container of attempt %s: %s", attempt_id, exc)
            continue
        async with swarm.lock(attempt_id):
            await swarm.remove_service(attempt_id, service["ID"])
        if attempt_id:
            with contextlib.suppress(RunnerError):
                await swarm.engine.in_thread(secrets.remove, attempt_id)
            removed.add(attempt_id)
            if labels.get("anyon.worktree"):
                worktrees.append(labels["anyon.worktree"])
    removed |= await remove_strays_on_nodes(swarm)
    for attempt_id in await swarm.engine.in_thread(secrets.attempt_ids):
        if attempt_id not in live:
            await swarm.engine.in_thread(secrets.remove, attempt_id)
            removed.add(attempt_id)
    return ReconcileResult(sorted(adopted), sorted(removed), swept, worktrees)


async def remove_strays_on_nodes(swarm: SwarmManager) -> set[str]:
    """Containers of this instance on any reachable node that no existing service of ours owns.

    A node that was down when its attempt's service was removed keeps the task container until its
    swarm agent catches up; a container left by the single-VM runner under the same instance is not
    used by this one. Services are listed *after* a node's containers, so a container placed
    meanwhile always finds its service in the list.
    """
    removed: set[str] = set()
    for node in await swarm.nodes():
        if node.get("Status", {}).get("State") != "ready":
            continue
        engine = await swarm.reachable(str(node["ID"]))
        if engine is None:
            continue
        listed = await engine.containers.list()
        if not listed:
            continue
        services = {str(s["ID"]) for s in await swarm.services()}
        for info in listed:
            labels = info.get("Labels", {})
            if labels.get(SERVICE_ID_LABEL) in services:
                continue
            attempt_id = labels.get(LABEL_ATTEMPT, "")
            await engine.forget(attempt_id)
            await engine.engine.remove_ids([info["Id"]])
            if attempt_id:
                removed.add(attempt_id)
    return removed


def node_report(swarm: SwarmManager) -> list[tuple[str, str, int]]:
    """(node hostname, "state/availability", running attempt tasks) per node, for the metrics.

    Blocking (docker-py): the metrics scrape calls it from a worker thread.
    """
    labels = instance_filters(swarm.instance_id)
    ours = {str(s["ID"]) for s in swarm.api.services(filters={"label": labels})}
    running: dict[str, int] = {}
    for task in swarm.api.tasks(filters={"desired-state": "running"}):
        if task.get("ServiceID") in ours and task.get("Status", {}).get("State") == "running":
            running[str(task["NodeID"])] = running.get(str(task["NodeID"]), 0) + 1
    report = []
    for node in swarm.api.nodes():
        node_id = str(node["ID"])
        name = str((node.get("Description") or {}).get("Hostname") or node_id[:12])
        state = f"{node.get('Status', {}).get('State')}/{node.get('Spec', {}).get('Availability')}"
        report.append((f"{name} ({node_id[:12]})", state, running.get(node_id, 0)))
    return report
