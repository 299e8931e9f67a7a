"""The API token check, session cookies, and the per-client limit on failed attempts.

Free of HTTP types so the rules can be tested on their own; :mod:`anyon.api.auth_middleware` maps
them onto requests. Why each piece exists:

* the token is compared in constant time (``hmac.compare_digest`` over SHA-256 digests, so not even
  the length leaks through timing);
* a browser cannot add an ``Authorization`` header to an ``EventSource`` or a WebSocket, so a login
  step trades the token once for a session cookie. The cookie holds an expiry and an HMAC keyed by
  the token, never the token itself: it survives a restart, and rotating the token ends every session;
* guessing is slowed by a token bucket per client address that only failures drain. While a client's
  bucket is empty, even a correct token is answered 429, so a guesser cannot tell a hit from a miss.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anyon.security.secrets import Secret

SESSION_COOKIE = "anyon_session"
SESSION_VERSION = "v1"
DEFAULT_SESSION_SECONDS = 7 * 24 * 3600


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class TokenChecker:
    """Knows the API token; checks presented tokens and issues/validates session cookie values."""

    def __init__(
        self,
        token: Secret,
        *,
        session_seconds: int = DEFAULT_SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        value = token.reveal()
        self._token_digest = _digest(value)
        self._session_key = hashlib.sha256(b"anyon-session\x00" + value.encode()).digest()
        self.session_seconds = session_seconds
        self._clock = clock

    def check_token(self, presented: str) -> bool:
        return hmac.compare_digest(_digest(presented), self._token_digest)

    def _mac(self, payload: str) -> str:
        return hmac.new(self._session_key, payload.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        expires = int(self._clock()) + self.session_seconds
        payload = f"{SESSION_VERSION}.{expires}"
        return f"{payload}.{self._mac(payload)}"

    def check_session(self, value: str) -> bool:
        version, _, rest = value.partition(".")
        expires_text, _, mac = rest.partition(".")
        if version != SESSION_VERSION or not expires_text.isdigit():
            return False
        expected = self._mac(f"{version}.{expires_text}")
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return False
        return int(expires_text) > self._clock()


@dataclass
class _Bucket:
    tokens: float
    updated: float


class FailureLimiter:
    """A token bucket per client that only failed attempts drain.

    ``capacity`` failures are allowed at once, then one more every ``1 / refill_per_second`` seconds.
    At most ``max_clients`` buckets are kept (least recently touched dropped first), so a flood of
    addresses cannot grow memory without bound.
    """

    def __init__(
        self,
        capacity: int = 10,
        refill_per_second: float = 0.2,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(capacity)
        self.refill = refill_per_second
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, client: str) -> _Bucket | None:
        bucket = self._buckets.get(client)
        if bucket is None:
            return None
        now = self._clock()
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.refill)
        bucket.updated = now
        if bucket.tokens >= self.capacity:
            del self._buckets[client]  # full again: nothing to remember
            return None
        return bucket

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may try now."""
        bucket = self._bucket(client)
        if bucket is None or bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) / self.refill

    def failure(self, client: str) -> None:
        bucket = self._bucket(client)
        if bucket is None:
            bucket = _Bucket(self.capacity, self._clock())
            self._buckets[client] = bucket
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(client)
        bucket.tokens = max(0.0, bucket.tokens - 1)


class Verdict(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # no credential presented
    INVALID = "invalid"  # a wrong token or cookie
    LIMITED = "limited"  # too many failures from this client


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    retry_after: float = 0.0
    via: str = ""  # "bearer" or "cookie" when OK
    principal: Any = (
        None  # who was authenticated, when accounts are on (anyon.services.team.access.Principal)
    )

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


class AccessGuard:
    """The one place that decides whether a request's credentials let it in."""

    def __init__(self, checker: TokenChecker, limiter: FailureLimiter | None = None) -> None:
        self.checker = checker
        self.limiter = limiter or FailureLimiter()

    def decide(self, client: str, authorization: str | None, cookie: str | None) -> Decision:
        bearer = _bearer(authorization)
        if bearer is None and not cookie:
            return Decision(Verdict.MISSING)
        wait = self.limiter.retry_after(client)
        if wait > 0:
            return Decision(Verdict.LIMITED, wait)
        if bearer is not None and self.checker.check_token(bearer):
            return Decision(Verdict.OK, via="bearer")
        if bearer is None and cookie and self.checker.check_session(cookie):
            return Decision(Verdict.OK, via="cookie")
        self.limiter.failure(client)
        return Decision(Verdict.INVALID)

    #: True when ``decide`` queries a database (accounts): the middleware then runs it in a thread
    blocking = False

    def session_for(self, decision: Decision) -> str:
        """The session cookie value for a successful login."""
        return self.checker.new_session()

    def login(self, client: str, token: str) -> Decision:
        """Check a token presented to the login step; on success the caller issues a session cookie."""
        wait = self.limiter.retry_after(client)
        if wait > 0:
            return Decision(Verdict.LIMITED, wait)
        if token and self.checker.check_token(token):
            return Decision(Verdict.OK, via="login")
        self.limiter.failure(client)
        return Decision(Verdict.INVALID if token else Verdict.MISSING)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""  # a credential in another scheme: presented, and wrong
    return value.strip()
