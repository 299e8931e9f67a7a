"""The credentials the server reads at start-up: the API token and the GitHub token.

Both go through :class:`~anyon.security.secrets.SecretProvider`, the very reader ``serve`` uses, so a file
these checks pass is one start-up accepts (owner, mode, emptiness).
"""

from __future__ import annotations

from collections.abc import Mapping

from anyon.checks.results import CheckResult, fail, ok, warn
from anyon.config.hosts import is_loopback
from anyon.config.model import AnyonConfig


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
