"""Docker (cloud mode): the socket, ``docker.user``, the Engine, the runner image, the metadata address.

With ``docker.runner = "swarm"`` the swarm behind the Engine is checked too (:mod:`anyon.checks.swarm`).
The metadata probe and the client are parameters, so tests run these checks without real traffic.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from anyon.checks.machine import user_name
from anyon.checks.results import CheckResult, fail, ok, warn
from anyon.checks.swarm import check_swarm
from anyon.config.model import AnyonConfig

METADATA_ADDRESS = "169.254.169.254"

#: Probe answering whether the metadata address is reachable from the task network: True/False, or a
#: string explaining why it could not tell.
MetadataProbe = Callable[[AnyonConfig], "bool | str"]


def _docker_user_check(config: AnyonConfig) -> CheckResult:
    from anyon.services.runners.base import RunnerError
    from anyon.services.runners.container_spec import resolve_user

    try:
        uid, gid = resolve_user(config.docker.user)
    except RunnerError as exc:
        return fail(
            "docker.user",
            f"{exc} (docker.user = {config.docker.user!r}: containers run as this host user)",
            "create it (deploy/gcp/bootstrap.sh creates anyon: useradd --system --user-group anyon), or "
            "set docker.user in [cloud.docker] / ANYON_DOCKER_USER to an existing user or uid:gid",
        )
    return ok("docker.user", f"{config.docker.user} resolves to uid {uid}, gid {gid}")


def _socket_check(config: AnyonConfig, uid: int) -> CheckResult | None:
    parts = urlsplit(config.docker.host)
    if parts.scheme != "unix":
        return None
    path = parts.path
    user = user_name(uid)
    if not os.path.exists(path):
        return fail(
            "docker socket",
            f"{path} does not exist",
            "install and start Docker: systemctl enable --now docker",
        )
    if not os.access(path, os.R_OK | os.W_OK):
        return fail(
            "docker socket",
            f"permission denied on the Docker socket {path} for {user} (Docker may well be running)",
            f"add the service user to the docker group: usermod -aG docker {user}, then restart the service",
        )
    return ok("docker socket", f"{path} is usable by {user}")


def _engine_failure(config: AnyonConfig, uid: int, exc: Exception) -> CheckResult:
    """Tell "permission denied" (a group to join) from "not running" (a service to start)."""
    text = str(exc)
    user = user_name(uid)
    if isinstance(exc, PermissionError) or "Permission denied" in text or "EACCES" in text:
        return fail(
            "docker engine",
            f"permission denied on the Docker socket {config.docker.host} for {user}: Docker runs, "
            "but this user may not use it",
            f"usermod -aG docker {user}, then restart the service (or log in again)",
        )
    return fail(
        "docker engine",
        f"the Docker Engine at {config.docker.host} is not running or does not answer ({text})",
        "start it: systemctl enable --now docker (or fix docker.host)",
    )


def default_metadata_probe(config: AnyonConfig, client: Any) -> bool | str:
    """Run a throw-away container on the task network and try the metadata address (2 s timeout)."""
    script = (
        f"if command -v curl >/dev/null; then curl -s -m 2 -o /dev/null http://{METADATA_ADDRESS}/; "
        f"else wget -q -T 2 -O /dev/null http://{METADATA_ADDRESS}/; fi"
    )
    try:
        container = client.create_container(
            config.docker.image,
            command=["sh", "-c", script],
            host_config=client.create_host_config(network_mode=config.docker.network, auto_remove=False),
            labels={"anyon.managed": "1", "anyon.probe": "metadata"},
        )
        try:
            client.start(container)
            code = int(client.wait(container, timeout=20).get("StatusCode", 1))
        finally:
            client.remove_container(container, force=True)
    except Exception as exc:
        return f"the probe container did not run: {exc}"
    return code == 0


def check_docker(
    config: AnyonConfig,
    uid: int,
    *,
    metadata_probe: MetadataProbe | None = None,
    client_factory: Callable[[], Any] | None = None,
) -> list[CheckResult]:
    results = []
    socket_result = _socket_check(config, uid)
    if socket_result is not None:
        results.append(socket_result)
    results.append(_docker_user_check(config))
    if socket_result is not None and socket_result.status == "fail":
        return results  # the socket line already says why and what to do; "start Docker" would mislead
    try:
        if client_factory is not None:
            client = client_factory()
        else:
            import docker

            client = docker.APIClient(base_url=config.docker.host, version="auto", timeout=10)
        version = client.version()
    except Exception as exc:
        results.append(_engine_failure(config, uid, exc))
        return results
    try:
        results.append(
            ok(
                "docker engine",
                f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}) "
                f"at {config.docker.host}",
            )
        )
        try:
            client.inspect_image(config.docker.image)
            results.append(ok("runner image", f"{config.docker.image} is present"))
        except Exception as exc:
            if config.docker.runner == "swarm":  # the manager may run no attempt: each node is checked
                results.append(ok("runner image", "not on the manager; checked on every node below"))
            else:
                results.append(
                    fail(
                        "runner image",
                        f"{config.docker.image} is not on the Docker host ({type(exc).__name__})",
                        f"docker build -t {config.docker.image} deploy/image",
                    )
                )
        results.append(_metadata_check(config, client, metadata_probe))
        if config.docker.runner == "swarm":
            results += check_swarm(config, client)
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    return results


def _metadata_check(config: AnyonConfig, client: Any, probe: MetadataProbe | None) -> CheckResult:
    name = "metadata address"
    if config.docker.network == "none" and probe is None:
        return ok(
            name,
            f"{METADATA_ADDRESS} is unreachable: task containers have no network (docker.network = none)",
        )
    answer = probe(config) if probe is not None else default_metadata_probe(config, client)
    if isinstance(answer, str):
        return warn(
            name, f"could not tell whether {METADATA_ADDRESS} is reachable: {answer}", "see deploy/RUNBOOK.md"
        )
    if answer:
        return warn(
            name,
            f"{METADATA_ADDRESS} is reachable from the task network {config.docker.network!r}: agents "
            "could read the VM's service-account token",
            f"block it: iptables -I DOCKER-USER -d {METADATA_ADDRESS} -j DROP (deploy/gcp/bootstrap.sh does)",
        )
    return ok(name, f"{METADATA_ADDRESS} is unreachable from the task network {config.docker.network!r}")
