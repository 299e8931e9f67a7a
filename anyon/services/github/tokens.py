"""Which GitHub token the server uses, and where each kind is kept.

Order (the reference's "PAT first, then OAuth"): a personal access token provided by ops through the
secret provider (``$CREDENTIALS_DIRECTORY/<github.token_credential>``, ``<auth.secrets_dir>/<name>``, or
``ANYON_GITHUB_TOKEN``), then a PAT saved from the UI, then the device-flow OAuth token. In cloud mode
with accounts an account's own PAT or OAuth token comes first and the ops token is its fallback
(:meth:`GitHubTokens.token_of`); the PR monitor polls each pull request with the token of the account
that opened it.

Tokens the server itself receives (device flow, ``PUT /api/config``) go to ``<data_dir>/secrets.json``,
written atomically with mode 0600 by :class:`~anyon.services.board.user_config.UserConfigService` — a file
only the service user can read, next to the config it belongs to. Not the database: the reference's encrypted
``secrets`` table needs a key the server would have to keep somewhere anyway, and a database is backed up,
replicated and shared far more widely than one 0600 file. Not the credentials directory or
``auth.secrets_dir``: those belong to ops and are read-only to the service. The dev-login placeholder is never
a GitHub token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from anyon.security.secrets import Secret, SecretError
from anyon.services.board.user_config import DEV_LOGIN_TOKEN, UserConfigService
from anyon.services.team.access import owner_id

log = logging.getLogger(__name__)

OAUTH = "github.oauth_token"
PAT = "github.pat"


class GitHubTokens:
    def __init__(
        self, user_config: UserConfigService, ops_token: Callable[[], Secret | None] | None = None
    ) -> None:
        self._config = user_config
        self._ops_token = ops_token
        self._warned: str | None = None

    def token(self) -> str | None:
        """The token the acting account's GitHub calls use, or None when none is configured."""
        return self.token_of(owner_id())

    def token_of(self, user_id: str | None) -> str | None:
        """``user_id``'s token: an account (cloud mode) uses its own first — what it pushes and opens is
        done as its own GitHub user — then the ops token; never the shared store's, which is the admin's.
        No account (local mode, the server's API token, the monitor's fallback): ops first, then the UI's.
        """
        if user_id is not None:
            return self._saved(user_id) or self._ops()
        return self._ops() or self._saved(None)

    def _saved(self, user_id: str | None) -> str | None:
        for name in (PAT, OAUTH):
            value = self._config.secret_of(user_id, name)
            if value and value != DEV_LOGIN_TOKEN:
                return value
        return None

    def _ops(self) -> str | None:
        if self._ops_token is not None:
            try:
                secret = self._ops_token()
            except SecretError as exc:
                if str(exc) != self._warned:  # once per problem: this runs on every GitHub call
                    self._warned = str(exc)
                    log.warning("the ops-provided GitHub token is not used: %s", exc)
                secret = None  # fall back to the UI's tokens; `anyon doctor` reports it too
            if secret is not None:
                return secret.reveal()
        return None

    def is_dev_login(self) -> bool:
        return self._config.secret(OAUTH) == DEV_LOGIN_TOKEN

    def redact(self, text: str, *tokens: str | None) -> str:
        """``text`` without the acting account's token nor any of ``tokens``."""
        for token in (self.token(), *tokens):
            if token:
                text = text.replace(token, "***")
        return text
