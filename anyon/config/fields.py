"""The catalogue of settings, derived from the typed model so the two cannot drift apart.

Every setting is a leaf ``<section>.<key>`` of :class:`~anyon.config.model.AnyonConfig`. The model
holds names and Python types; this module adds what the types cannot say (byte sizes, absolute paths,
ranges, secrets, flat environment names).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Literal

from anyon.config import model

Kind = Literal["str", "int", "float", "bool", "choice", "list", "bytes"]

#: Integer settings that also accept byte-size strings such as ``"2g"`` or ``"512m"``.
BYTE_SIZES = frozenset(
    {
        "server.max_body_bytes",
        "docker.memory",
        "docker.memory_swap",
        "docker.tmpfs_size",
        "executions.log_memory_bytes",
        "executions.log_cap_bytes",
        "retention.log_total_bytes",
        "images.max_bytes",
    }
)

#: String settings that must hold an absolute path (after ``~`` and ``${...}`` expansion).
PATHS = frozenset(
    {
        "server.frontend_dir",
        "paths.base_dir",
        "paths.data_dir",
        "paths.worktree_dir",
        "paths.workspace_dir",
        "paths.temp_dir",
        "paths.log_file",
        "paths.secrets_dir",
        "database.file",
        "auth.token_file",
        "auth.credentials_dir",
        "auth.secrets_dir",
        "agents.home",
        "docker.swarm_tls_dir",
    }
)

#: List settings whose every item must be an absolute path.
PATH_LISTS = frozenset({"paths.project_roots"})

#: Inclusive numeric bounds (``None`` = unbounded).
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "server.port": (0, 65535),
    "server.max_body_bytes": (1, None),
    "server.shutdown_timeout_seconds": (0, None),
    "database.busy_timeout_ms": (0, None),
    "docker.memory": (6 * 1024**2, None),  # the Docker Engine refuses less than 6 MiB
    "docker.memory_swap": (0, None),
    "docker.cpus": (0.01, None),
    "docker.pids_limit": (1, None),
    "docker.tmpfs_size": (1, None),
    "docker.stop_grace_seconds": (0, None),
    "docker.warm_pool_size": (0, None),
    "docker.warm_pool_projects": (0, None),
    "docker.warm_pool_idle_seconds": (0, None),
    "docker.warm_pool_per_node": (0, None),
    "docker.reconcile_interval_seconds": (0.1, None),
    "docker.swarm_task_timeout_seconds": (1, None),
    "executions.max_concurrent": (1, None),
    "executions.max_concurrent_per_user": (0, None),
    "executions.stop_escalation_seconds": (0, None),
    "executions.log_memory_bytes": (1024, None),
    "executions.start_timeout_seconds": (0, None),
    "executions.max_run_seconds": (0, None),
    "executions.approval_timeout_seconds": (0.1, None),
    "executions.ready_worktrees": (0, 8),
    "executions.ready_worktree_projects": (0, None),
    "executions.ready_worktree_idle_seconds": (0, None),
    "retention.worktree_hours": (0, None),
    "retention.expiry_interval_minutes": (0.1, None),
    "executions.log_cap_bytes": (0, None),
    "retention.log_days": (0, None),
    "retention.log_total_bytes": (0, None),
    "retention.audit_days": (0, None),
    "auth.revocation_check_seconds": (0.1, 3600),
    "github.timeout_seconds": (0.1, 600),
    "github.pr_monitor_interval_seconds": (0, None),
    "images.max_bytes": (1, None),
    "images.max_form_parts": (1, 1000),
    "agents.login_timeout_seconds": (1, None),
    # below the server-wide 4 open login terminals (agent_login.MAX_OPEN_SESSIONS): one account always
    # leaves at least one to the others
    "agents.login_terminals_per_account": (1, 3),
}

#: Settings whose values may carry credentials; never printed in full.
SECRETS = frozenset({"database.url", "github.api_url", "github.web_url"})

#: Flat environment names (the seed's and the reference's), highest precedence first per key.
#: They win over the nested ``ANYON_<SECTION>__<KEY>`` form.
FLAT_ENV: dict[str, tuple[str, ...]] = {
    "deployment.mode": ("ANYON_DEPLOYMENT_MODE",),
    "paths.base_dir": ("ANYON_CLOUD_BASE_DIR", "ANYON_BASE_DIR"),
    "paths.data_dir": ("ANYON_DATA_DIR", "ANYON_ASSET_DIR"),
    "paths.worktree_dir": ("ANYON_WORKTREE_DIR",),
    "paths.workspace_dir": ("ANYON_WORKSPACE_DIR",),
    "paths.temp_dir": ("ANYON_TEMP_DIR",),
    "paths.log_file": ("ANYON_LOG_FILE",),
    "database.file": ("ANYON_DATABASE_FILE",),
    "docker.user": ("ANYON_DOCKER_USER", "ANYON_USER"),
    "docker.image": ("ANYON_CLOUD_CONTAINER_IMAGE", "ANYON_CONTAINER_IMAGE"),
    "server.host": ("HOST",),
    "server.port": ("BACKEND_PORT", "PORT"),
    "server.cors_allowed_origins": ("CORS_ALLOWED_ORIGINS",),
    "auth.token_file": ("ANYON_API_TOKEN_FILE",),
    "auth.credentials_dir": ("CREDENTIALS_DIRECTORY",),
    "auth.secrets_dir": ("ANYON_SECRETS_DIR",),
    "github.client_id": ("GITHUB_CLIENT_ID",),
    "agents.home": ("ANYON_AGENT_HOME",),
    "agents.claude_login_command": ("CLAUDE_LOGIN_COMMAND",),
}


@dataclass(frozen=True)
class FieldSpec:
    """What one setting accepts."""

    section: str
    name: str
    kind: Kind
    optional: bool  # None allowed; "" in a settings file or the environment means "unset"
    choices: tuple[str, ...] = ()
    has_default: bool = True
    default: object = None

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def is_path(self) -> bool:
        return self.key in PATHS

    @property
    def is_path_list(self) -> bool:
        return self.key in PATH_LISTS

    @property
    def is_secret(self) -> bool:
        return self.key in SECRETS

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        return BOUNDS.get(self.key, (None, None))

    def env_names(self) -> tuple[str, ...]:
        """Every environment name for this key, highest precedence first."""
        nested = f"ANYON_{self.section.upper()}__{self.name.upper()}"
        return (*FLAT_ENV.get(self.key, ()), nested)


def _describe(section: str, name: str, hint: object, field: dataclasses.Field[object]) -> FieldSpec:
    optional = False
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        (hint,) = rest
        args = typing.get_args(hint)
    key = f"{section}.{name}"
    kind: Kind
    choices: tuple[str, ...] = ()
    if typing.get_origin(hint) is Literal:
        kind, choices = "choice", tuple(str(a) for a in args)
    elif typing.get_origin(hint) is tuple:
        kind = "list"
    elif hint is bool:
        kind = "bool"
    elif hint is int:
        kind = "bytes" if key in BYTE_SIZES else "int"
    elif hint is float:
        kind = "float"
    elif hint is str:
        kind = "str"
    else:  # pragma: no cover - a model change this catalogue does not know yet
        raise TypeError(f"unsupported type {hint!r} for setting {key}")
    has_default = field.default is not dataclasses.MISSING
    return FieldSpec(
        section, name, kind, optional, choices, has_default, field.default if has_default else None
    )


@cache
def section_classes() -> dict[str, type]:
    """Section name -> its dataclass, in model order."""
    hints = typing.get_type_hints(model.AnyonConfig)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(model.AnyonConfig)
        if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name])
    }


@cache
def catalogue() -> dict[str, FieldSpec]:
    """Dotted key -> :class:`FieldSpec` for every setting, in model order."""
    specs: dict[str, FieldSpec] = {}
    for section, cls in section_classes().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            spec = _describe(section, f.name, hints[f.name], f)
            specs[spec.key] = spec
    return specs


def keys_of(section: str) -> list[str]:
    return [spec.name for spec in catalogue().values() if spec.section == section]
