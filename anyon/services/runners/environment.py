"""The environment an agent's process starts with: allow-listed names only, never the server's secrets.

Local mode runs agents as the user on purpose, so they get what a developer's shell has (``PATH``,
``HOME``, locale, the agent CLIs' own API keys, proxies), but not the server's own configuration and
credentials: no ``ANYON_*`` (the API token can sit in ``ANYON_API_TOKEN``), no systemd credentials
directory, no libpq ``PG*`` variables, no ``DATABASE_URL``. Those names are refused **whatever the
allow-list says**, and so is any variable whose value holds one of the literal secrets the server knows
(its database password), under whatever name it was exported.

Allow-list entries are names or shell-style patterns (``LC_*``, ``XDG_*``), matched case-sensitively.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

# never passed to an agent, whatever the allow-list: the server's configuration and credentials
NEVER_PASSED: tuple[str, ...] = (
    "ANYON_*",
    "CREDENTIALS_DIRECTORY",
    "PG*",
    "DATABASE_URL",
    "*_DATABASE_URL",
    # systemd's hand-over to the service itself, meaningless (or misleading) to a child
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
)


# secrets shorter than this are not searched for in values
MIN_SECRET_MATCH = 6


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_never_passed(name: str) -> bool:
    return _matches(name, NEVER_PASSED)


def agent_environment(
    environ: Mapping[str, str], allowlist: Iterable[str], *, secrets: Iterable[str] = ()
) -> dict[str, str]:
    """The part of ``environ`` an agent may see: names the allow-list matches, minus :data:`NEVER_PASSED`
    and minus any variable whose value contains one of ``secrets`` (those of at least
    :data:`MIN_SECRET_MATCH` characters)."""
    patterns = tuple(allowlist)
    # a very short password would match half the environment (PATH included); its name rules still apply
    hidden = tuple(s for s in secrets if len(s) >= MIN_SECRET_MATCH)
    return {
        name: value
        for name, value in environ.items()
        if _matches(name, patterns)
        and not is_never_passed(name)
        and not any(secret in value for secret in hidden)
    }


def without_server_secrets(environ: Mapping[str, str], *, secrets: Iterable[str] = ()) -> dict[str, str]:
    """``environ`` minus what :func:`agent_environment` never passes (for a runner with its own
    allow-list, such as the container runner's ``docker.env_allowlist``)."""
    return agent_environment(environ, ("*",), secrets=secrets)
