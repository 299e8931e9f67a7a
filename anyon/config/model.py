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
Launcher = Literal["auto", "installed", "npx"]
LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
ProjectVisibility = Literal["team", "private"]
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
    read_cache: bool = True  # serve the board and the project list from memory while the data is unchanged


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
    warm_pool_per_node: int = 0  # runner "swarm": warm containers one node may hold at most; 0 = no limit
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
    # cloud mode with accounts: processes one account may run at once (its others wait); 0 = no limit
    max_concurrent_per_user: int = 0
    stop_escalation_seconds: float = 2.0
    log_memory_bytes: int = 4 * 1024**2  # per process, in-memory replay buffer
    # a coding agent silent this long after its start fails (no network, registry, login prompt); 0 = off
    start_timeout_seconds: float = 300.0
    # agents and setup/cleanup scripts running longer than this fail; 0 = off (never the dev server)
    max_run_seconds: float = 0.0
    # a tool approval nobody answers within this many seconds is timed out (the agent is told "denied")
    approval_timeout_seconds: float = 3600.0
    # local mode: checkouts of the base branch made ahead per recently active project (0 = off)
    ready_worktrees: int = 0
    ready_worktree_projects: int = 4
    ready_worktree_idle_seconds: float = 900.0
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
    audit_days: float = 90.0  # audit files (cloud accounts) older than this are deleted (0 = kept)


@dataclass(frozen=True)
class LoggingSettings:
    level: LogLevel = "INFO"
    format: LogFormat = "json"
    access_log: bool = False  # one line per HTTP request (anyon.access); on in the [cloud] defaults


@dataclass(frozen=True)
class AuthSettings:
    token_credential: str = "api-token"  # name looked up by the secret provider
    token_file: str | None = None
    # systemd's $CREDENTIALS_DIRECTORY: a file named token_credential there is a configured credential
    credentials_dir: str | None = None
    # where ops put secret files when systemd credentials are not used: <secrets_dir>/<name>, mode 0600
    secrets_dir: str | None = "/etc/anyon/secrets"
    # cloud mode with accounts: a user's project is seen by every account ("team") or by its owner,
    # its members and admins only ("private")
    project_visibility: ProjectVisibility = "team"
    # how often open WebSockets/SSE streams are checked against revoked tokens and disabled users
    revocation_check_seconds: float = 2.0


@dataclass(frozen=True)
class GithubSettings:
    # REST API base (GitHub Enterprise: https://HOST/api/v3); every API call goes here
    api_url: str = "https://api.github.com"
    # web base: the device flow's endpoints, and the only host clones and pushes may reach
    web_url: str = "https://github.com"
    client_id: str | None = None  # OAuth App client id for the device flow (env GITHUB_CLIENT_ID)
    timeout_seconds: float = 15.0  # connect/read timeout of every GitHub request
    pr_monitor_interval_seconds: float = 60.0  # open PRs are polled this often; 0 = no monitor
    # name of an ops-provided personal access token (credentials_dir, auth.secrets_dir, ANYON_<NAME>)
    token_credential: str = "github-token"
    # tests only: also allow file:// remotes and loopback http:// hosts for clone and push
    allow_local_remotes: bool = False


@dataclass(frozen=True)
class ImageSettings:
    max_bytes: int = 20 * 1024**2  # largest image upload; the contract's limit is 20 MB
    max_form_parts: int = 8  # parts one upload form may hold (the contract sends one, "image")


@dataclass(frozen=True)
class NotificationSettings:
    # desktop notice on the server's machine when an attempt finishes (the UI's sound/push choices apply)
    desktop: bool = True
    push_command: str = "notify-send"  # run as PROGRAM TITLE MESSAGE; a missing program is skipped
    sound_command: str | None = None  # run as PROGRAM FILE.wav; None = first of paplay, aplay, afplay


@dataclass(frozen=True)
class LauncherSettings:
    """Which binary runs each agent: "auto" prefers a CLI installed on the PATH (the host's in local mode,
    the runner image's in cloud mode) over ``npx -y <pinned package>``; "installed" and "npx" force one."""

    claude_code: Launcher = "auto"
    amp: Launcher = "auto"
    gemini: Launcher = "auto"
    codex: Launcher = "auto"
    opencode: Launcher = "auto"
    # cursor-agent is not published on npm, so it has no "npx" launcher
    cursor_agent: Literal["auto", "installed"] = "auto"
    qwen_code: Launcher = "auto"
    copilot: Launcher = "auto"


@dataclass(frozen=True)
class AgentSettings:
    """Where agents keep their logins, and the browser login terminal."""

    # the per-deployment agent home (0700): agents' HOME locally when set; mounted read-only and copied
    # into each attempt's container HOME in cloud mode. None = local agents keep the user's own HOME.
    home: str | None = None
    # the command the login terminal runs (the contract's CLAUDE_LOGIN_COMMAND); None = `claude` itself
    claude_login_command: str | None = None
    # a login terminal left open longer than this is closed
    login_timeout_seconds: float = 900.0
    # cloud mode: login terminals one account (or the API token) may hold open at once, below the server-wide
    # cap so one account can never take the last terminals from the others
    login_terminals_per_account: int = 2


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
    github: GithubSettings = field(default_factory=GithubSettings)
    images: ImageSettings = field(default_factory=ImageSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    launchers: LauncherSettings = field(default_factory=LauncherSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_cloud(self) -> bool:
        return self.deployment.mode == "cloud"

    @property
    def database_url(self) -> str:
        """The effective database URL: ``database.url`` or the SQLite file."""
        return self.database.url or f"sqlite:///{self.database.file}"
