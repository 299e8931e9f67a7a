"""``anyon doctor`` checks of a swarm (``docker.runner = "swarm"``): the manager, the nodes, their engines.

A node that is ready but cannot run an attempt (no engine label, an engine the server cannot reach, no
runner image) fails: Swarm would place attempts on it and every command there would fail. While another node
can serve, such a node only warns, as a node that is down or drained does (Swarm places nothing on
those): one broken worker must not keep the server from starting; with no usable node at all the check
fails.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from anyon.checks.results import CheckResult, fail, ok, warn
from anyon.config.model import AnyonConfig

#: Longest a node engine's answer is waited for by the doctor.
NODE_TIMEOUT_SECONDS = 5


def check_swarm(config: AnyonConfig, manager: Any, node_client: Any = None) -> list[CheckResult]:
    """Checks of the swarm behind ``docker.host`` through ``manager`` (a docker-py ``APIClient``).

    ``node_client(url)`` makes a client for one node's engine (tests pass their own; default docker-py).
    """
    try:
        swarm = manager.info().get("Swarm") or {}
    except Exception as exc:
        return [fail("swarm manager", f"cannot read the swarm state: {exc}", "check docker.host")]
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        return [
            fail(
                "swarm manager",
                f"the Docker Engine at {config.docker.host} is not a swarm manager "
                f"(swarm state {swarm.get('LocalNodeState') or 'inactive'})",
                "run `docker swarm init --advertise-addr <internal IP>` there, or set docker.runner = "
                '"engine" (deploy/RUNBOOK.md, "Scale out")',
            )
        ]
    nodes = manager.nodes()
    results = [ok("swarm manager", f"{config.docker.host} manages a swarm of {len(nodes)} node(s)")]
    checked = [_check_node(config, node, node_client) for node in nodes]
    usable = sum(result.status == "ok" for result in checked)
    if usable:  # a broken node warns while others can serve: it must not keep the server from starting
        checked = [warn(r.name, r.message, r.hint) if r.status == "fail" else r for r in checked]
    results += checked
    if usable == 0:
        results.append(
            fail(
                "swarm nodes",
                "no node is ready, active and able to run attempts",
                'join a worker and label it (deploy/RUNBOOK.md, "Add a worker node")',
            )
        )
    return results


def _check_node(config: AnyonConfig, node: dict[str, Any], node_client: Any) -> CheckResult:
    node_id = str(node.get("ID", ""))
    hostname = (node.get("Description") or {}).get("Hostname") or node_id[:12]
    name = f"swarm node {hostname} ({node_id[:12]})"
    state = (node.get("Status") or {}).get("State", "unknown")
    spec = node.get("Spec") or {}
    availability = spec.get("Availability", "unknown")
    if state != "ready" or availability != "active":
        return warn(name, f"{state}, {availability}: no attempt is placed on it", "see deploy/RUNBOOK.md")
    label = config.docker.swarm_engine_label
    address = (spec.get("Labels") or {}).get(label, "")
    if not address:
        return fail(
            name,
            f"ready but has no {label!r} label naming its Docker Engine",
            f"docker node update --label-add {label}=tcp://<node address>:2376 {node_id[:12]}",
        )
    client = None
    try:
        # docker-py asks the engine for its API version here
        client = _node_client(address, node_client, config.docker.swarm_tls_dir)
        client.ping()
    except Exception as exc:
        if client is not None:
            _close(client)
        from anyon.services.runners.base import RunnerError

        if isinstance(exc, RunnerError):  # our own words: e.g. a file of docker.swarm_tls_dir is missing
            return fail(name, f"its engine at {address} cannot be reached: {exc}", "fix docker.swarm_tls_dir")
        return fail(
            name,
            f"its engine at {address} does not answer ({type(exc).__name__})",
            "open the engine's port to this server only, with TLS (docs/scale-out.md), or fix the label",
        )
    try:
        client.inspect_image(config.docker.image)
    except Exception:
        return fail(
            name,
            f"the runner image {config.docker.image} is not on it",
            f"docker pull {config.docker.image} on the node (or load it)",
        )
    finally:
        _close(client)
    return ok(name, f"ready, active; engine {address} answers; {config.docker.image} present")


def _node_client(address: str, factory: Any, tls_dir: str | None) -> Any:
    if factory is not None:
        return factory(address)
    import docker

    from anyon.services.runners.swarm_node import tls_client
    from anyon.services.runners.swarm_tls import tls_files

    if tls_dir and urlsplit(address).scheme in ("tcp", "https"):
        return tls_client(address, tls_files(tls_dir), NODE_TIMEOUT_SECONDS)
    return docker.APIClient(base_url=address, version="auto", timeout=NODE_TIMEOUT_SECONDS)


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if close is not None:
        close()
