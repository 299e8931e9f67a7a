"""The access guard of a cloud server with user accounts: the API token, or a user's token or session.

The server's own API token keeps working as the admin (legacy) identity, so nothing set up before
accounts existed breaks. A user's token (``anyon user token``) or the session cookie the login page
issues for it authenticates that user; both are checked against the database on every request, so a
revoked token or a disabled user is refused at once. Failures drain the same per-client bucket as a
wrong API token, so user tokens cannot be guessed faster than the API token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from anyon.security.auth import AccessGuard, Decision, FailureLimiter, TokenChecker, Verdict, _bearer
from anyon.services.team.access import LEGACY_ADMIN
from anyon.services.team.accounts import AccountService


class AccountGuard(AccessGuard):
    blocking = True

    def __init__(
        self,
        checker: TokenChecker,
        accounts: AccountService,
        limiter: FailureLimiter | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(checker, limiter)
        self.accounts = accounts
        self._clock = clock
        self._limiter_lock = threading.Lock()

    def decide(self, client: str, authorization: str | None, cookie: str | None) -> Decision:
        bearer = _bearer(authorization)
        if bearer is None and not cookie:
            return Decision(Verdict.MISSING)
        with self._limiter_lock:  # decide runs in worker threads: the limiter's dict is not thread-safe
            wait = self.limiter.retry_after(client)
        if wait > 0:
            return Decision(Verdict.LIMITED, wait)
        if bearer is not None:
            if self.checker.check_token(bearer):
                return Decision(Verdict.OK, via="bearer", principal=LEGACY_ADMIN)
            user = self.accounts.authenticate(bearer)
            if user is not None:
                return Decision(Verdict.OK, via="bearer", principal=user)
        elif cookie:
            if self.checker.check_session(cookie):
                return Decision(Verdict.OK, via="cookie", principal=LEGACY_ADMIN)
            user = self.accounts.check_session(cookie, self._clock())
            if user is not None:
                return Decision(Verdict.OK, via="cookie", principal=user)
        with self._limiter_lock:
            self.limiter.failure(client)
        return Decision(Verdict.INVALID)

    def login(self, client: str, token: str) -> Decision:
        with self._limiter_lock:  # decide runs in worker threads: the limiter's dict is not thread-safe
            wait = self.limiter.retry_after(client)
        if wait > 0:
            return Decision(Verdict.LIMITED, wait)
        if token and self.checker.check_token(token):
            return Decision(Verdict.OK, via="login", principal=LEGACY_ADMIN)
        user = self.accounts.authenticate(token) if token else None
        if user is not None:
            return Decision(Verdict.OK, via="login", principal=user)
        with self._limiter_lock:
            self.limiter.failure(client)
        return Decision(Verdict.INVALID if token else Verdict.MISSING)

    def session_for(self, decision: Decision) -> str:
        principal = decision.principal
        if principal is None or principal.token_id is None:
            return self.checker.new_session()
        return self.accounts.new_session(principal.token_id, self.checker.session_seconds, self._clock())
