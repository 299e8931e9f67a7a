"""Named secrets (the API token first) read from where ops are told to put them.

Order, first hit wins:

1. ``$CREDENTIALS_DIRECTORY/<name>`` — systemd ``LoadCredential=``, the recommended way: systemd copies
   the file into a private, per-service directory readable only by the service;
2. ``auth.token_file`` — for the API token only, when ops named a file explicitly;
3. ``<auth.secrets_dir>/<name>`` — ``/etc/anyon/secrets/<name>`` by default;
4. the environment variable ``ANYON_<NAME>`` (``ANYON_API_TOKEN``) — a last resort, since the environment
   of a process is visible to more tools than a 0600 file.

A file readable by group or others, or owned by anyone but the service user, is refused with an error
naming the file and the command that fixes it: a token that every local account can read protects
nothing. Values are wrapped in :class:`Secret`, whose ``repr``/``str`` never show the value, so that a
secret passed to a log call or an f-string by mistake prints as ``Secret(<source>)``.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

from anyon.config.model import AuthSettings
from anyon.config.semantics import secret_env_name

API_TOKEN = "api-token"
MAX_SECRET_BYTES = 64 * 1024


class SecretError(Exception):
    """A secret exists but must not be used (unsafe file, unreadable, empty); the message names the fix."""


@dataclass(frozen=True)
class Secret:
    """A secret value and where it came from; printing it never prints the value."""

    source: str
    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"Secret({self.source})"

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r})"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_secret_file(path: str, service_uid: int) -> None:
    """Raise :class:`SecretError` unless ``path`` is a regular file only ``service_uid`` can read."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise SecretError(f"cannot read the secrets file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"the secrets file {path} is not a regular file")
    if info.st_uid != service_uid:
        owner, user = _user_name(info.st_uid), _user_name(service_uid)
        raise SecretError(
            f"the secrets file {path} is owned by {owner}, not by the service user {user}; "
            f"fix: chown {user} {path} && chmod 600 {path}"
        )
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise SecretError(
            f"the secrets file {path} is readable by group or others (mode {mode:04o}); fix: chmod 600 {path}"
        )


def _read_file(path: str, service_uid: int) -> str:
    check_secret_file(path, service_uid)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"cannot read the secrets file {path}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise SecretError(f"the secrets file {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(f"the secrets file {path} is not UTF-8 text") from None
    if not text:
        raise SecretError(f"the secrets file {path} is empty")
    return text


class SecretProvider:
    """Looks secrets up by name; built once from the auth settings and the process environment."""

    def __init__(
        self,
        auth: AuthSettings,
        environ: Mapping[str, str] | None = None,
        *,
        service_uid: int | None = None,
    ) -> None:
        self._auth = auth
        self._environ = dict(os.environ if environ is None else environ)
        self._uid = os.geteuid() if service_uid is None else service_uid

    def candidates(self, name: str) -> list[tuple[str, str]]:
        """Where ``name`` is looked for, in order: ``(kind, location)`` with kind ``file`` or ``env``."""
        found: list[tuple[str, str]] = []
        if self._auth.credentials_dir:
            found.append(("file", os.path.join(self._auth.credentials_dir, name)))
        if name == self._auth.token_credential and self._auth.token_file:
            found.append(("file", self._auth.token_file))
        if self._auth.secrets_dir:
            found.append(("file", os.path.join(self._auth.secrets_dir, name)))
        found.append(("env", secret_env_name(name)))
        return found

    def get(self, name: str) -> Secret | None:
        """The secret, None when no source has it; :class:`SecretError` when a source is unsafe."""
        for kind, where in self.candidates(name):
            if kind == "env":
                value = self._environ.get(where, "").strip()
                if value:
                    return Secret(f"env {where}", value)
                continue
            if os.path.lexists(where):
                return Secret(where, _read_file(where, self._uid))
        return None

    def require(self, name: str) -> Secret:
        secret = self.get(name)
        if secret is None:
            places = ", ".join(where for _, where in self.candidates(name))
            raise SecretError(f"no secret named {name!r}: looked in {places}")
        return secret

    def api_token(self) -> Secret | None:
        return self.get(self._auth.token_credential)
