"""The typed, frozen configuration every other layer reads.

One object, built once by :func:`anyon.config.load_config`, is the single source of
truth (uvicorn's ``Config`` shape). Nothing below the deployment reads settings files
or environment variables; services receive the values they need from here through
their constructors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DeploymentMode = Literal["local", "cloud"]
LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
#: "engine": every container on docker.host; "swarm": docker.host is a Swarm manager placing them on nodes
DockerRunnerKind = Literal["engine", "swarm"]


@dataclass(frozen=True)
class DeploymentSettings:
    mode: DeploymentMode = "local"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 0  # 0 = a random free port, written to <temp_dir>/anyon.port
    cors_allowed_origins: tuple[str, ...] = ()
    # Host names (or host:port) browsers use to reach the server besides loopback and server.host
    public_hosts: tuple[str, ...] = ()
    # Peers (IPs or CIDRs) whose X-Forwarded-For names the client; empty = trust no proxy
    trusted_proxies: tuple[str, ...] = ()
    frontend_dir: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    shutdown_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class PathSettings:
    base_dir: str  # cloud: /var/opt/anyon; local: ~/.local/share/anyon
    data_dir: str  # config.json, profiles.json, db file (the reference's "asset dir")
    worktree_dir: str
    workspace_dir: str
    temp_dir: str
    log_file: str | None = None
    secrets_dir: str | None = None  # per-attempt secret dirs (cloud); default <temp_dir>/cloud-secrets
    project_roots: tuple[str, ...] = ()  # where project repositories may live; empty = anywhere


@dataclass(frozen=True)
class DatabaseSettings:
    file: str  # SQLite file, used when url is empty
    url: str | None = None  # sqlite:///abs/path or postgresql://user@host:port/db
    busy_timeout_ms: int = 5000


@dataclass(frozen=True)
class DockerSettings:
    host: str = "unix:///var/run/docker.sock"
    image: str = "anyon-claude:latest"
    user: str = "ubuntu"  # a host user name, or "uid:gid"
    network: str = "none"
    memory: int = 4 * 1024**3  # bytes; settings accept "4g", "512m"
    memory_swap: int = 4 * 1024**3
    cpus: float = 2.0
    pids_limit: int = 512
    read_only_rootfs: bool = True
    tmpfs_size: int = 512 * 1024**2
    env_allowlist: tuple[str, ...] = ("LANG", "LC_ALL", "TZ", "TERM")
    stop_grace_seconds: float = 2.0
    prestart_exec: bool = True  # keep one launcher waiting in each attempt's container
    warm_pool_size: int = 0  # started containers kept ready per recently active project ([cloud]: 1)
    warm_pool_projects: int = 4  # projects that keep warm containers at once
    warm_pool_idle_seconds: float = 900.0  # a project without attempts this long loses them
    reconcile_interval_seconds: float = 60.0  # leftover containers/worktrees/secrets removed this often
    runner: DockerRunnerKind = "engine"  # "swarm": one service per attempt, placed by the manager
    swarm_constraints: tuple[
        str, ...
    ] = ()  # Swarm placement constraints, e.g. node.labels.anyon.pool==agents
    swarm_engine_label: str = "anyon.engine"  # node label holding the node's Engine address (for execs)
    swarm_task_timeout_seconds: float = 60.0  # a placed service whose task is not running by then fails
    # ca.pem, cert.pem, key.pem: node engines at tcp:// addresses are reached over TLS with this client cert
    swarm_tls_dir: str | None = None


@dataclass(frozen=True)
class ExecutionSettings:
    max_concurrent: int = 4
    stop_escalation_seconds: float = 2.0
    log_memory_bytes: int = 4 * 1024**2  # per process, in-memory replay buffer
    # a coding agent silent this long after its start fails (no network, registry, login prompt); 0 = off
    start_timeout_seconds: float = 300.0
    # agents and setup/cleanup scripts running longer than this fail; 0 = off (never the dev server)
    max_run_seconds: float = 0.0
    # stored output per process: beyond it the head and the tail are kept, the middle omitted (0 = no cap)
    log_cap_bytes: int = 10 * 1024**2
    # local mode: the server's environment variables a host-run agent sees (names or LC_*-style patterns);
    # ANYON_*, PG*, DATABASE_URL and CREDENTIALS_DIRECTORY never pass, whatever this says
    host_env_allowlist: tuple[str, ...] = (
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "LC_*",
        "TZ",
        "TERM",
        "COLORTERM",
        "TMPDIR",
        "XDG_*",
        "SSH_AUTH_SOCK",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "ANTHROPIC_*",
        "CLAUDE_*",
        "OPENAI_*",
        "CODEX_*",
        "GEMINI_*",
        "GOOGLE_API_KEY",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "AMP_API_KEY",
        "CURSOR_API_KEY",
        "OPENROUTER_API_KEY",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    )


@dataclass(frozen=True)
class RetentionSettings:
    worktree_hours: float = 72.0
    expiry_interval_minutes: float = 10.0
    orphan_sweep: bool = True
    orphan_sweep_dry_run: bool = False
    log_days: float = 30.0  # stored logs of processes that ended longer ago are deleted (0 = kept)
    log_total_bytes: int = 1024**3  # oldest ended processes' logs go first beyond this total (0 = no limit)


@dataclass(frozen=True)
class LoggingSettings:
    level: LogLevel = "INFO"
    format: LogFormat = "json"


@dataclass(frozen=True)
class AuthSettings:
    token_credential: str = "api-token"  # name looked up by the secret provider
    token_file: str | None = None
    # systemd's $CREDENTIALS_DIRECTORY: a file named token_credential there is a configured credential
    credentials_dir: str | None = None
    # where ops put secret files when systemd credentials are not used: <secrets_dir>/<name>, mode 0600
    secrets_dir: str | None = "/etc/anyon/secrets"


@dataclass(frozen=True)
class AnyonConfig:
    deployment: DeploymentSettings
    server: ServerSettings
    paths: PathSettings
    database: DatabaseSettings
    docker: DockerSettings
    executions: ExecutionSettings
    retention: RetentionSettings
    logging: LoggingSettings
    auth: AuthSettings
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_cloud(self) -> bool:
        return self.deployment.mode == "cloud"

    @property
    def database_url(self) -> str:
        """The effective database URL: ``database.url`` or the SQLite file."""
        return self.database.url or f"sqlite:///{self.database.file}"
