"""Which git remotes the server may reach with the GitHub token, and the repository they name.

An API client chooses the clone URL, and the project's ``origin`` can be edited by whoever can write
the repository (in local mode, the agent). Both are therefore checked before libgit2 sees them: only
``https://`` (the scheme of ``github.web_url``) to exactly the configured host and port, a path of the
form ``/<owner>/<repo>[.git]``, no user name, password, query or fragment. ``file://``, ``ssh://``, scp-like
``git@host:path`` to other hosts, local paths and internal hosts are refused, so a client can neither make
the server read a local repository nor reach another machine, and the token is only ever offered to the
configured GitHub. An ``origin`` written as ``git@<github host>:owner/repo`` or ``ssh://`` to that host is
pushed over https instead (the token cannot travel over ssh).

``github.allow_local_remotes`` (a setting, for tests) also accepts ``file://`` URLs and loopback http(s)
hosts; no API call can turn it on.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from anyon.services.errors import ServiceError

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_SCP = re.compile(r"^(?:[A-Za-z0-9_.-]+@)?([A-Za-z0-9.-]+):(?!/)(.+)$")


@dataclass(frozen=True)
class RemoteRepo:
    """A checked remote: the URL libgit2 gets, the owner/name GitHub knows it by, whether it is local."""

    url: str
    owner: str
    name: str
    local: bool = False


def _owner_repo(path: str, shown: str) -> tuple[str, str]:
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if len(parts) != 2:
        raise ServiceError(f"The remote {shown} does not name a repository as /<owner>/<repository>")
    owner, name = parts[0], parts[1].removesuffix(".git")
    for part in (owner, name):
        if not _NAME.match(part) or part in (".", ".."):
            raise ServiceError(f"The remote {shown} has an invalid owner or repository name")
    return owner, name


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RemotePolicy:
    def __init__(self, web_url: str, allow_local: bool = False) -> None:
        web = urlsplit(web_url)
        self._scheme = web.scheme
        self._host = (web.hostname or "").lower()
        self._port = web.port
        self._allow_local = allow_local

    @property
    def host(self) -> str:
        return self._host

    def _shown(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:  # never echo credentials back
            return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        return url

    def check(self, url: str) -> RemoteRepo:
        """The remote for a URL from a client or a repository's config; a soft error when refused."""
        if not isinstance(url, str) or not url.strip() or any(ord(c) < 32 for c in url):
            raise ServiceError("The repository URL is empty or contains control characters")
        url = url.strip()
        shown = self._shown(url)
        scp = _SCP.match(url)
        if scp and "://" not in url:
            return self._from_ssh(scp.group(1), "/" + scp.group(2), shown)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file" and self._allow_local:
            path = unquote(parts.path)
            if parts.netloc or not os.path.isabs(path):
                raise ServiceError(f"The local remote {shown} must be file:///absolute/path")
            owner, name = _owner_repo("/".join(path.rstrip("/").split("/")[-2:]), shown)
            return RemoteRepo(f"file://{path}", owner, name, local=True)
        if scheme == "ssh":
            return self._from_ssh(parts.hostname or "", parts.path, shown)
        if scheme not in ("https", "http"):
            raise ServiceError(
                f"The repository URL {shown} is not allowed: only https:// URLs of {self._host} are"
            )
        if parts.username is not None or parts.password is not None:
            raise ServiceError(f"The repository URL {shown} must not carry a user name or password")
        if parts.query or parts.fragment:
            raise ServiceError(f"The repository URL {shown} must not have a query or fragment")
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            raise ServiceError(f"The repository URL {shown} has an invalid port") from None
        configured = scheme == self._scheme and host == self._host and port == self._port
        local = self._allow_local and _is_loopback(host)
        if not configured and not local:
            raise ServiceError(
                f"The repository URL {shown} is not allowed: only {self._scheme}:// URLs of {self._host} are"
            )
        owner, name = _owner_repo(parts.path, shown)
        netloc = host if port is None else f"{host}:{port}"
        if ":" in host:
            netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
        return RemoteRepo(
            f"{scheme}://{netloc}/{owner}/{name}.git", owner, name, local=local and not configured
        )

    def _from_ssh(self, host: str, path: str, shown: str) -> RemoteRepo:
        if host.lower() != self._host:
            raise ServiceError(
                f"The repository URL {shown} is not allowed: only {self._scheme}:// URLs of {self._host} are"
            )
        owner, name = _owner_repo(path, shown)
        netloc = self._host if self._port is None else f"{self._host}:{self._port}"
        return RemoteRepo(f"{self._scheme}://{netloc}/{owner}/{name}.git", owner, name)
