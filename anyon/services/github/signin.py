"""GitHub sign-in: the OAuth device flow (``/api/auth/github/device/start|poll``) and the token check.

One flow is pending at a time (the server has one user); its ``device_code`` stays in memory and never
leaves the server — the browser only sees the ``user_code`` it shows the user. On success the token is
stored (see :mod:`anyon.services.github.tokens`) with the user's login and primary e-mail.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from anyon.services.board.user_config import UserConfigService
from anyon.services.errors import ServiceError
from anyon.services.github.client import GitHubClient, GitHubError
from anyon.services.github.tokens import GitHubTokens

log = logging.getLogger(__name__)

SCOPES = "repo read:user user:email"


@dataclass
class _Pending:
    device_code: str
    expires_at: float


class GitHubSignIn:
    def __init__(
        self,
        client: GitHubClient,
        tokens: GitHubTokens,
        user_config: UserConfigService,
        client_id: str | None,
    ) -> None:
        self._client = client
        self._tokens = tokens
        self._config = user_config
        self._client_id = client_id
        self._lock = threading.Lock()
        self._pending: _Pending | None = None

    def _require_client_id(self) -> str:
        if not self._client_id:
            raise ServiceError(
                "GitHub sign-in is not configured on this server: set github.client_id (GITHUB_CLIENT_ID) "
                "to an OAuth App's client id, or save a personal access token in the settings."
            )
        return self._client_id

    def start(self) -> dict[str, Any]:
        client_id = self._require_client_id()
        try:
            answer = self._client.device_code(client_id, SCOPES)
        except GitHubError as exc:
            raise ServiceError(f"GitHub sign-in could not start: {exc.message}") from None
        try:
            expires_in = int(answer.get("expires_in", 900))
            interval = int(answer.get("interval", 5))
            payload = {
                "user_code": str(answer["user_code"]),
                "verification_uri": str(answer["verification_uri"]),
                "expires_in": expires_in,
                "interval": interval,
            }
        except (KeyError, TypeError, ValueError):
            raise ServiceError("GitHub sign-in could not start: GitHub's answer is incomplete") from None
        with self._lock:
            self._pending = _Pending(str(answer["device_code"]), time.monotonic() + expires_in)
        return payload

    def poll(self) -> str:
        """``AUTHORIZATION_PENDING``, ``SLOW_DOWN`` or ``SUCCESS``; soft errors for the other outcomes."""
        client_id = self._require_client_id()
        with self._lock:
            pending = self._pending
        if pending is None:
            raise ServiceError("No GitHub sign-in is in progress; start it again")
        if time.monotonic() > pending.expires_at:
            self._clear(pending)
            raise ServiceError("The GitHub sign-in code expired; start the sign-in again")
        try:
            answer = self._client.device_token(client_id, pending.device_code)
        except GitHubError as exc:
            raise ServiceError(f"GitHub sign-in failed: {exc.message}") from None
        error = answer.get("error")
        if error == "authorization_pending":
            return "AUTHORIZATION_PENDING"
        if error == "slow_down":
            return "SLOW_DOWN"
        if error:
            self._clear(pending)
            reasons = {
                "expired_token": "the code expired; start the sign-in again",
                "access_denied": "access was denied on GitHub",
                "incorrect_client_credentials": "github.client_id is not a valid OAuth App client id",
                "device_flow_disabled": "the device flow is not enabled for this OAuth App",
            }
            raise ServiceError(f"GitHub sign-in failed: {reasons.get(str(error), str(error))}")
        token = answer.get("access_token")
        if not isinstance(token, str) or not token.strip() or "\n" in token:
            raise ServiceError("GitHub sign-in failed: GitHub's answer has no usable token")
        try:
            user = self._client.user(token)
            email = self._client.primary_email(token)
        except GitHubError as exc:
            raise ServiceError(f"GitHub sign-in failed: {exc.message}") from None
        self._config.github_login(token, str(user.get("login") or "") or None, email)
        self._clear(pending)
        log.info("signed in to GitHub as %s", user.get("login"))
        return "SUCCESS"

    def _clear(self, pending: _Pending) -> None:
        with self._lock:
            if self._pending is pending:
                self._pending = None

    def check(self) -> str:
        """``VALID`` when GitHub accepts the token (or the dev login is active), else ``INVALID``.

        An expired or revoked token (401) is INVALID; GitHub unreachable is a soft error, since the
        answer is then unknown.
        """
        token = self._tokens.token()
        if token is None:
            return "VALID" if self._tokens.is_dev_login() else "INVALID"
        try:
            self._client.user(token)
        except GitHubError as exc:
            if exc.kind == "unauthorized":
                log.warning("the GitHub token is no longer valid (expired or revoked)")
                return "INVALID"
            raise ServiceError(f"Could not check the GitHub token: {exc.message}") from None
        return "VALID"
