"""Can this machine serve this configuration? Checks shared by cloud start-up, ``anyon doctor`` and
``anyon config validate --online``.

``anyon config validate`` proves the settings are well-formed; these checks look at the machine: the
Docker Engine and its image, the service user's rights, disk space, git, the database, the API token.
Each result is ``ok``, ``warn`` or ``fail`` with a one-line hint saying what to do, so the same list
reads well in a terminal, as JSON, and in the journal when start-up refuses to go on.

Every probe that touches something outside the process is a parameter, so tests exercise the real
checks without sending traffic anywhere but loopback.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from anyon.config.checks import is_loopback
from anyon.config.model import AnyonConfig

Status = Literal["ok", "warn", "fail"]
METADATA_ADDRESS = "169.254.169.254"
DISK_FAIL_BYTES = 1024**3
DISK_WARN_BYTES = 5 * 1024**3

#: Probe answering whether the metadata address is reachable from the task network: True/False, or a
#: string explaining why it could not tell.
MetadataProbe = Callable[[AnyonConfig], "bool | str"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.message}"
        return f"{text}\n     hint: {self.hint}" if self.hint else text


def ok(name: str, message: str) -> CheckResult:
    return CheckResult(name, "ok", message)


def warn(name: str, message: str, hint: str) -> CheckResult:
    return CheckResult(name, "warn", message, hint)


def fail(name: str, message: str, hint: str) -> CheckResult:
    return CheckResult(name, "fail", message, hint)


def worst(results: list[CheckResult]) -> Status:
    statuses = {r.status for r in results}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"


# --- the machine -----------------------------------------------------------------------------------


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def configured_directories(config: AnyonConfig) -> list[tuple[str, str]]:
    paths = config.paths
    found = [
        ("paths.base_dir", paths.base_dir),
        ("paths.data_dir", paths.data_dir),
        ("paths.worktree_dir", paths.worktree_dir),
        ("paths.workspace_dir", paths.workspace_dir),
        ("paths.temp_dir", paths.temp_dir),
    ]
    if paths.secrets_dir:
        found.append(("paths.secrets_dir", paths.secrets_dir))
    if paths.log_file:
        found.append(("paths.log_file", os.path.dirname(paths.log_file)))
    if not config.database.url:
        found.append(("database.file", os.path.dirname(config.database.file)))
    first_key: dict[str, str] = {}
    for key, path in found:
        first_key.setdefault(path, key)
    return [(key, path) for path, key in first_key.items()]


def check_directories(config: AnyonConfig, uid: int) -> list[CheckResult]:
    user = _user_name(uid)
    results = []
    for key, path in configured_directories(config):
        name = f"directory {key}"
        if not os.path.exists(path):
            parent = path
            while not os.path.exists(parent):
                parent = os.path.dirname(parent)
            if os.access(parent, os.W_OK | os.X_OK):
                results.append(ok(name, f"{path} does not exist yet; it is created at start-up"))
            else:
                results.append(
                    fail(
                        name,
                        f"{path} does not exist and {parent} is not writable by {user}",
                        f"install -d -o {user} -m 0750 {path}",
                    )
                )
            continue
        if not os.path.isdir(path):
            results.append(fail(name, f"{path} is not a directory", f"remove it or change {key}"))
            continue
        owner = os.stat(path).st_uid
        if not os.access(path, os.W_OK | os.X_OK):
            results.append(fail(name, f"{path} is not writable by {user}", f"chown -R {user} {path}"))
        elif owner != uid and uid != 0:
            results.append(
                warn(
                    name,
                    f"{path} is owned by {_user_name(owner)}, not by the service user {user}",
                    f"chown -R {user} {path}",
                )
            )
        else:
            results.append(ok(name, f"{path} is writable by {user}"))
    return results


def check_disk(config: AnyonConfig) -> list[CheckResult]:
    results = []
    seen_devices: set[int] = set()
    for key, path in (
        ("paths.data_dir", config.paths.data_dir),
        ("paths.worktree_dir", config.paths.worktree_dir),
    ):
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        device = os.stat(existing).st_dev
        if device in seen_devices:
            continue
        seen_devices.add(device)
        free = shutil.disk_usage(existing).free
        shown = f"{free / 1024**3:.1f} GiB free for {key} ({existing})"
        if free < DISK_FAIL_BYTES:
            results.append(
                fail("disk space", shown, "free space on that disk or grow it; worktrees need room")
            )
        elif free < DISK_WARN_BYTES:
            results.append(
                warn("disk space", shown, "less than 5 GiB left: attempts may fail on large repositories")
            )
        else:
            results.append(ok("disk space", shown))
    return results


def check_git() -> CheckResult:
    git = shutil.which("git")
    if git is None:
        return fail("git", "git is not on PATH", "apt-get install git")
    try:
        out = subprocess.run([git, "--version"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return fail("git", f"{git} --version failed: {exc}", "reinstall git")
    return ok("git", out.stdout.strip())


def check_database(config: AnyonConfig) -> CheckResult:
    url = config.database_url
    if url.startswith("sqlite"):
        return ok("database", f"SQLite file {config.database.file if not config.database.url else url}")
    from anyon.config.redact import redact_text, redact_url, url_secrets

    shown = redact_url(url)
    try:
        import psycopg2

        parts = urlsplit(url)
        dsn = url.split("?", 1)[0] if parts.query else url
        conn = psycopg2.connect(dsn, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("select version()")
                row = cur.fetchone()
        finally:
            conn.close()
    except Exception as exc:
        text = redact_text(str(exc), url_secrets(url)).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        return fail(
            "database", f"PostgreSQL at {shown} does not answer: {message}", "start it or fix database.url"
        )
    version = str(row[0]).split(",")[0] if row else "PostgreSQL"
    return ok("database", f"{version} at {shown}")


def check_api_token(config: AnyonConfig, environ: Mapping[str, str] | None) -> CheckResult:
    from anyon.security.secrets import SecretError, SecretProvider

    if is_loopback(config.server.host):
        return ok("api token", f"not needed: the server listens on loopback ({config.server.host})")
    provider = SecretProvider(config.auth, environ)
    try:
        secret = provider.api_token()
    except SecretError as exc:
        return fail("api token", str(exc), "fix the file as the message says, then restart")
    if secret is None:
        return fail(
            "api token",
            f"server.host {config.server.host} is reachable but no API token was found",
            "put the token in /etc/anyon/secrets/api-token (mode 0600) or use LoadCredential=api-token:…",
        )
    if secret.source.startswith("env "):
        return warn(
            "api token",
            f"read from {secret.source}",
            "prefer LoadCredential= or a 0600 file: the environment leaks easily",
        )
    return ok("api token", f"read from {secret.source}")


def check_github(config: AnyonConfig, environ: Mapping[str, str] | None) -> CheckResult:
    """Where the GitHub token comes from (no network: whether GitHub accepts it is the UI's check)."""
    from anyon.security.secrets import SecretError, SecretProvider

    name = config.github.token_credential
    try:
        secret = SecretProvider(config.auth, environ).get(name)
    except SecretError as exc:
        return fail("github", str(exc), "fix the file as the message says, then restart")
    if secret is None:
        signin = (
            "device sign-in is on"
            if config.github.client_id
            else "device sign-in is off (github.client_id unset); a token saved in the UI still works"
        )
        return ok("github", f"{config.github.web_url}: no ops-provided token ({name}); {signin}")
    if secret.source.startswith("env "):
        return warn(
            "github", f"token read from {secret.source}", f"prefer LoadCredential={name}:… or a 0600 file"
        )
    return ok("github", f"{config.github.web_url}: token read from {secret.source}")


# --- Docker (cloud mode) ---------------------------------------------------------------------------


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
    user = _user_name(uid)
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
    user = _user_name(uid)
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
            from anyon.checks_swarm import check_swarm

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


# --- all of them -----------------------------------------------------------------------------------


def run_checks(
    config: AnyonConfig,
    *,
    environ: Mapping[str, str] | None = None,
    uid: int | None = None,
    metadata_probe: MetadataProbe | None = None,
    docker_client_factory: Callable[[], Any] | None = None,
) -> list[CheckResult]:
    """Every check that applies to ``config`` (Docker ones in cloud mode only), in a stable order."""
    service_uid = os.geteuid() if uid is None else uid
    results = check_directories(config, service_uid)
    results += check_disk(config)
    results.append(check_git())
    results.append(check_database(config))
    results.append(check_api_token(config, environ))
    results.append(check_github(config, environ))
    if config.is_cloud:
        results += check_docker(
            config, service_uid, metadata_probe=metadata_probe, client_factory=docker_client_factory
        )
    return results
