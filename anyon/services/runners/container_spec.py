"""The hardened container of one attempt, as data: name, labels, environment, mounts and limits.

Design notes (spec §4.4 and §8, ARCHITECTURE decisions 3 and 7):

* **Path identity, nothing shared writable** — the worktree (with the attempt's own repository in its
  ``.git``) is bind-mounted read-write and the project's object store read-only, each at its host path, so
  git inside the container works unchanged while nothing it writes is read by the host's git as
  configuration (THREAT-MODEL rules 1-2; :mod:`anyon.services.git.isolation`).
* **Hardening** — the container runs as ``docker.user`` (resolved on the host), with every capability
  dropped, ``no-new-privileges``, a read-only root filesystem, tmpfs ``/tmp`` and HOME, an init process,
  memory/swap/CPU/pids limits, the configured network (``none`` allowed), only allow-listed variables
  from the server's environment, and no host path besides the two above and the attempt's secrets
  directory (read-only).

Kept apart from the code that talks to the Engine so the single-VM runner and the Swarm service spec
(:mod:`anyon.services.runners.swarm_spec`) read the same names, labels and environment from one place.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
from collections.abc import Mapping
from typing import Any

from anyon.config.model import DockerSettings
from anyon.services.runners.base import RunnerError
from anyon.services.runners.secrets_dir import CONTAINER_SECRETS_DIR, check_attempt_id

LABEL_MANAGED = "anyon.managed"
LABEL_INSTANCE = "anyon.instance"
LABEL_ATTEMPT = "anyon.attempt"
#: HOME inside every container: a tmpfs owned by the container user.
CONTAINER_HOME = "/home/anyon"
#: Where the deployment's agent home (logins) is mounted, read-only; it is copied into HOME at start so an
#: agent works on its own copy and can never change the shared credentials.
CONTAINER_AGENT_HOME = "/opt/anyon/agent-home"

#: Keeps the container alive without a busy process; exits at once on TERM/INT.
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]


def resolve_user(spec: str) -> tuple[int, int]:
    """``docker.user`` → (uid, gid): a host user name (optionally ``name:group``) or ``uid[:gid]``."""
    user, _, group = spec.partition(":")
    try:
        if user.isdigit():
            uid = int(user)
            default_gid = uid
            with contextlib.suppress(KeyError):
                default_gid = pwd.getpwuid(uid).pw_gid
        else:
            entry = pwd.getpwnam(user)
            uid, default_gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        raise RunnerError(
            f"docker.user {spec!r}: no user {user!r} on this host; use a user name or uid:gid"
        ) from None
    if not group:
        return uid, default_gid
    if group.isdigit():
        return uid, int(group)
    try:
        return uid, grp.getgrnam(group).gr_gid
    except KeyError:
        raise RunnerError(f"docker.user {spec!r}: no group {group!r} on this host") from None


def mount_paths(attempt_id: str, worktree_path: str, objects_dir: str) -> tuple[str, str]:
    """(worktree, object store) as the container mounts them: real paths, both existing directories."""
    check_attempt_id(attempt_id)
    worktree = os.path.realpath(worktree_path)
    git_dir = os.path.realpath(objects_dir)
    for label, path in (("worktree", worktree), ("project object store", git_dir)):
        if not os.path.isdir(path):
            raise RunnerError(f"the attempt's {label} {path!r} does not exist")
    return worktree, git_dir


def container_env(
    settings: DockerSettings, host_env: Mapping[str, str], attempt_id: str, worktree: str
) -> dict[str, str]:
    """The container's base environment: allow-listed host variables and anyon's own."""
    return {
        **{k: v for k, v in host_env.items() if k in settings.env_allowlist},
        "HOME": CONTAINER_HOME,
        "ANYON_ATTEMPT_ID": attempt_id,
        "ANYON_WORKSPACE": worktree,
        "ANYON_SECRET_DIR": CONTAINER_SECRETS_DIR,
    }


def instance_filters(instance_id: str, attempt_id: str | None = None) -> list[str]:
    """Label filters selecting this instance's containers (or services), or one attempt's."""
    labels = [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={instance_id}"]
    if attempt_id is not None:
        labels.append(f"{LABEL_ATTEMPT}={attempt_id}")
    return labels


class ContainerSpec:
    """How every container of one server instance is named, labelled, mounted and hardened.

    ``instance_id`` names this server's data directory in the ``anyon.instance`` label, so two servers
    sharing a daemon never touch each other's containers. ``host_env`` is the server's environment,
    from which only ``docker.env_allowlist`` names reach containers.
    """

    def __init__(
        self, settings: DockerSettings, instance_id: str, host_env: Mapping[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self.uid, self.gid = resolve_user(settings.user)
        self.host_env = {k: v for k, v in (host_env or {}).items() if k in settings.env_allowlist}

    def container_name(self, attempt_id: str) -> str:
        tag = hashlib.sha1(self.instance_id.encode()).hexdigest()[:8]
        return f"anyon-{tag}-{attempt_id}"

    def labels(self, attempt_id: str) -> dict[str, str]:
        return {LABEL_MANAGED: "1", LABEL_INSTANCE: self.instance_id, LABEL_ATTEMPT: attempt_id}

    def mount_labels(self, attempt_id: str, worktree: str, git_dir: str) -> dict[str, str]:
        """The labels of a new container: its attempt's, and the paths it mounts (read back on adoption)."""
        return {**self.labels(attempt_id), "anyon.worktree": worktree, "anyon.git-dir": git_dir}

    def filters(self, attempt_id: str | None = None) -> list[str]:
        return instance_filters(self.instance_id, attempt_id)

    def base_env(self, attempt_id: str, worktree: str) -> dict[str, str]:
        return container_env(self.settings, self.host_env, attempt_id, worktree)

    def host_config_kwargs(
        self, worktree: str, git_dir: str, secrets_dir: str, home: str | None = None
    ) -> dict[str, Any]:
        """Everything that hardens and mounts a container, as ``create_host_config`` arguments."""
        from docker.types import Mount

        s = self.settings
        tmpfs_opts = f"rw,nosuid,nodev,size={s.tmpfs_size}"
        kwargs: dict[str, Any] = {
            "mounts": [
                Mount(target=worktree, source=worktree, type="bind", read_only=False),
                Mount(target=git_dir, source=git_dir, type="bind", read_only=True),
                Mount(target=CONTAINER_SECRETS_DIR, source=secrets_dir, type="bind", read_only=True),
                *self.agent_home_mounts(home),
            ],
            "tmpfs": {
                "/tmp": tmpfs_opts,
                CONTAINER_HOME: f"{tmpfs_opts},uid={self.uid},gid={self.gid},mode=0700",
            },
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "read_only": s.read_only_rootfs,
            "init": True,
            "network_mode": s.network,
            "pids_limit": s.pids_limit,
            "nano_cpus": int(s.cpus * 1e9) if s.cpus > 0 else None,
            "mem_limit": s.memory if s.memory > 0 else None,
            "memswap_limit": s.memory_swap if s.memory > 0 and s.memory_swap > 0 else None,
            "ipc_mode": "private",
        }
        return {k: v for k, v in kwargs.items() if v is not None}

    @staticmethod
    def agent_home_mounts(home: str | None) -> list[Any]:
        from docker.types import Mount

        if not home or not os.path.isdir(home):
            return []
        return [Mount(target=CONTAINER_AGENT_HOME, source=home, type="bind", read_only=True)]

    @staticmethod
    def mounts_match(state: dict[str, Any], worktree: str, git_dir: str, home: str | None) -> bool:
        """Are these the mounts the attempt needs, the agent home of its account included? (A warm
        container, made before its attempt had an account, is remade for an account with its own home.)"""
        mounts = {m.get("Destination"): m for m in state.get("Mounts", [])}
        shared = mounts.get(git_dir) or {}
        mounted_home = (mounts.get(CONTAINER_AGENT_HOME) or {}).get("Source")
        wanted_home = home if home and os.path.isdir(home) else None
        return (
            (mounts.get(worktree) or {}).get("Source") == worktree
            and shared.get("Source") == git_dir
            and not shared.get("RW", True)
            and mounted_home == wanted_home
        )
