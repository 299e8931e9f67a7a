"""The semantic checks that span several keys or the shape of a string, after each value is converted.

Like :mod:`anyon.config.convert`, they return issues instead of raising, so one run reports every problem.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from anyon.config.convert import display
from anyon.config.errors import ConfigIssue, make_issue
from anyon.config.fields import FieldSpec
from anyon.config.hosts import is_loopback, parse_host_port, parse_network, parse_origin
from anyon.config.layers import show_value

_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$")
#: node.<attribute> or engine.labels.<name> / node.labels.<name>, then == or !=, then a value
_SWARM_CONSTRAINT = re.compile(r"^\s*(node|engine)\.[A-Za-z0-9_.\-]+\s*(==|!=)\s*[^\s=!]+\s*$")
_NODE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_DOCKER_USER = re.compile(r"^([a-z_][a-z0-9_.-]*\$?|\d+)(:([a-z_][a-z0-9_.-]*|\d+))?$", re.IGNORECASE)
DOCKER_SCHEMES = ("unix", "tcp", "ssh", "npipe", "http", "https")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


def secret_env_name(name: str) -> str:
    """The last-resort environment variable of a named secret: api-token -> ANYON_API_TOKEN.

    :mod:`anyon.security.secrets` reads the variable this names, so the check below and start-up agree.
    """
    return "ANYON_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def semantic_checks(
    values: Mapping[str, object],
    origins: Mapping[str, str],
    specs: Mapping[str, FieldSpec],
    environ: Mapping[str, str] | None = None,
) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """Checks spanning several keys or the shape of a string; returns (errors, warnings).

    ``environ`` is only consulted for the presence of the token's last-resort environment variable.
    """
    errors: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []

    def err(key: str, expected: str, detail: str = "") -> None:
        errors.append(
            make_issue(key, origins[key], expected, display(specs[key], values[key]), detail=detail)
        )

    def warn(key: str, detail: str) -> None:
        warnings.append(
            make_issue(key, origins[key], "", display(specs[key], values[key]), kind="warning", detail=detail)
        )

    host = values.get("server.host")
    if isinstance(host, str):
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if not _HOSTNAME.match(host):
                err("server.host", "an IP address or a host name")
    cors = values.get("server.cors_allowed_origins")
    for origin_value in cors if isinstance(cors, tuple) else ():
        if origin_value == "*":
            err(
                "server.cors_allowed_origins",
                'origins such as "https://board.example.com"',
                detail='"*" is not accepted: it would let every web page drive the server; list the '
                'origins (scheme://host[:port]) the UI is served from, e.g. "https://board.example.com"',
            )
            break
        if parse_origin(str(origin_value)) is None:
            err(
                "server.cors_allowed_origins",
                'origins such as "https://board.example.com"',
                detail=f'expected origins such as "https://board.example.com" (scheme://host[:port], no '
                f"path), found {show_value(origin_value)}",
            )
            break
    public = values.get("server.public_hosts")
    for entry in public if isinstance(public, tuple) else ():
        if parse_host_port(str(entry)) is None:
            err(
                "server.public_hosts",
                'host names or host:port, such as "anyon.example.com" or "10.0.0.5:8080"',
                detail='expected host names or host:port, such as "anyon.example.com" or "10.0.0.5:8080" '
                f"(no scheme, no path), found {show_value(entry)}",
            )
            break
    proxies = values.get("server.trusted_proxies")
    for entry in proxies if isinstance(proxies, tuple) else ():
        if parse_network(str(entry)) is None:
            err(
                "server.trusted_proxies",
                'IP addresses or CIDR blocks, such as "127.0.0.1" or "10.0.0.0/8"',
                detail='expected IP addresses or CIDR blocks, such as "127.0.0.1" or "10.0.0.0/8", '
                f"found {show_value(entry)}",
            )
            break
    url = values.get("database.url")
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.scheme not in DATABASE_SCHEMES:
            err("database.url", "a URL starting with sqlite:/// or postgresql://")
        elif parts.scheme == "sqlite" and not (url.startswith("sqlite:///") and os.path.isabs(parts.path)):
            err("database.url", "sqlite:/// followed by an absolute path (four slashes in all)")
        elif parts.scheme != "sqlite" and not parts.hostname and not parts.path.strip("/"):
            err("database.url", "postgresql://user@host:port/database")
    docker_host = values.get("docker.host")
    if isinstance(docker_host, str):
        scheme = urlsplit(docker_host).scheme
        if scheme not in DOCKER_SCHEMES:
            err("docker.host", "a URL starting with " + ", ".join(f"{s}://" for s in DOCKER_SCHEMES[:4]))
    for key in ("github.api_url", "github.web_url"):
        base = values.get(key)
        if isinstance(base, str):
            parts = urlsplit(base)
            loopback_http = parts.scheme == "http" and is_loopback(parts.hostname or "")
            if (
                (parts.scheme != "https" and not loopback_http)
                or not parts.hostname
                or parts.username is not None
                or parts.password is not None
                or parts.query
                or parts.fragment
            ):
                err(key, "an https:// URL without credentials, query or fragment (http:// only on loopback)")
    user = values.get("docker.user")
    if isinstance(user, str) and not _DOCKER_USER.match(user):
        err("docker.user", 'a user name or "uid:gid"')
    image = values.get("docker.image")
    if isinstance(image, str) and (not image or any(c.isspace() for c in image)):
        err("docker.image", "an image reference without spaces")
    constraints = values.get("docker.swarm_constraints")
    for entry in constraints if isinstance(constraints, tuple) else ():
        if not _SWARM_CONSTRAINT.match(str(entry)):
            err(
                "docker.swarm_constraints",
                'Swarm constraints such as "node.labels.anyon.pool==agents" or "node.role!=manager"',
                detail='expected Swarm constraints such as "node.labels.anyon.pool==agents", '
                f"found {show_value(entry)}",
            )
            break
    label = values.get("docker.swarm_engine_label")
    if isinstance(label, str) and not _NODE_LABEL.match(label):
        err("docker.swarm_engine_label", "a node label name such as anyon.engine")
    memory, swap = values.get("docker.memory"), values.get("docker.memory_swap")
    if isinstance(memory, int) and isinstance(swap, int) and swap < memory:
        err(
            "docker.memory_swap",
            f"at least docker.memory ({memory} bytes)",
            detail=f"expected at least docker.memory ({memory} bytes), found {swap}",
        )

    # Auth when reachable: a non-loopback listener needs a credential.
    if isinstance(host, str) and not is_loopback(host):
        token_file = values.get("auth.token_file")
        creds = values.get("auth.credentials_dir")
        name = values.get("auth.token_credential")
        secrets = values.get("auth.secrets_dir")
        has_credential = (
            bool(token_file)
            or any(
                isinstance(d, str) and isinstance(name, str) and os.path.isfile(os.path.join(d, name))
                for d in (creds, secrets)
            )
            or (isinstance(name, str) and bool((environ or {}).get(secret_env_name(name))))
        )
        if not has_credential:
            errors.append(
                make_issue(
                    "server.host",
                    origins["server.host"],
                    "a loopback address, or an auth credential",
                    show_value(host),
                    detail=f"{show_value(host)} is reachable from other machines but no auth credential is "
                    "configured: set auth.token_file (ANYON_API_TOKEN_FILE), or provide a credential named "
                    "auth.token_credential in auth.credentials_dir (CREDENTIALS_DIRECTORY) or "
                    "auth.secrets_dir, or set ANYON_API_TOKEN, or listen on 127.0.0.1",
                )
            )

    mode = values.get("deployment.mode")
    if mode == "cloud":
        if values.get("docker.network") not in ("none", None):
            warn("docker.network", 'cloud containers normally run without a network ("none")')
        if values.get("docker.read_only_rootfs") is False:
            warn("docker.read_only_rootfs", "cloud containers normally have a read-only root filesystem")
        if values.get("logging.format") == "text":
            warn("logging.format", 'journald and log shippers expect "json" in cloud mode')
        if values.get("paths.secrets_dir") is None:
            warn(
                "paths.secrets_dir", "cloud mode passes secrets through per-attempt directories; none is set"
            )
    if isinstance(host, str) and host.strip("[]") in ("0.0.0.0", "::") and not public:
        warn(
            "server.host",
            "listening on every address, but server.public_hosts is empty: browsers and load balancers "
            "must then reach the server as localhost/127.0.0.1, any other Host is refused (HTTP 403)",
        )
    port = values.get("server.port")
    if isinstance(port, int) and 0 < port < 1024:
        warn("server.port", "ports below 1024 need extra privileges")
    if values.get("github.allow_local_remotes") is True:
        warn(
            "github.allow_local_remotes",
            "file:// and loopback remotes are allowed for clone and push: meant for tests only",
        )
    if values.get("retention.orphan_sweep_dry_run") is True:
        warn(
            "retention.orphan_sweep_dry_run",
            "orphaned containers and worktrees are only logged, never removed",
        )
    return errors, warnings
