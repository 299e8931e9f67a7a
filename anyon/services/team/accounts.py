"""User accounts of a cloud server shared by a team: users, their API tokens, project members.

Token secrets are stored as HMAC-SHA256 under a server key (``<data_dir>/accounts.key``, mode 0600), not
with a password hash such as argon2. Why: a token is 32 random bytes (256 bits), so there is nothing to
slow down — an offline guess is hopeless whatever the hash — while every request, WebSocket and SSE
stream must be authenticated. A keyed hash is deterministic, so the presented secret is looked up through
the unique index on ``secret_hash`` (one indexed query per request, no scan with a slow hash per user),
and a copy of the database alone neither reveals tokens nor lets anyone test guesses without the key.

Nothing is cached: a revoked token or a disabled user is refused by the very next request, even when the
change was made by ``anyon user`` in another process.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from anyon.services.db.account_models import ProjectMember, User, UserToken
from anyon.services.db.columns import parse_uuid, utc_now
from anyon.services.db.database import Database
from anyon.services.db.models import Project
from anyon.services.errors import NotFound, ServiceError
from anyon.services.team.access import Principal

TOKEN_PREFIX = "anyon_u_"
KEY_FILE = "accounts.key"
SESSION_VERSION = "u1"
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AccountError(ServiceError):
    """A bad account request (unknown login, duplicate login, bad name): a clear message, nothing changed."""


def load_key(data_dir: str) -> bytes:
    """The server key (created once, mode 0600, never overwritten: replacing it would void every token)."""
    path = os.path.join(data_dir, KEY_FILE)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        with open(path, "rb") as handle:
            key = handle.read()
        if len(key) < 32:
            raise AccountError(
                f"{path} is damaged (shorter than 32 bytes); restore it from a backup"
            ) from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    secret: str  # shown once, never stored


class AccountService:
    """Users, tokens and project members; the only code that reads or writes those tables."""

    def __init__(self, database: Database, key: bytes) -> None:
        self._db = database
        self._key = key

    def _hash(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    # --- administration (the CLI) -------------------------------------------------------------------

    def add_user(self, login: str, *, admin: bool = False) -> dict[str, Any]:
        if not _LOGIN.match(login):
            raise AccountError(
                f"invalid login {login!r}: use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
            )
        with self._db.connection():
            if User.select().where(User.login == login).exists():
                raise AccountError(f"a user {login!r} already exists")
            user = User.create(id=str(uuid.uuid4()), login=login, is_admin=admin)
        return _user_dict(user)

    def _user(self, login: str) -> User:
        user = User.get_or_none(User.login == login)
        if user is None:
            raise AccountError(f"no user {login!r} (see 'anyon user list')")
        return user

    def list_users(self) -> list[dict[str, Any]]:
        with self._db.connection():
            users = list(User.select().order_by(User.login))
            counts: dict[str, int] = {}
            for token in UserToken.select(UserToken.user_id).where(UserToken.revoked_at.is_null()):
                counts[token.user_id] = counts.get(token.user_id, 0) + 1
        return [{**_user_dict(u), "active_tokens": counts.get(u.id, 0)} for u in users]

    def set_disabled(self, login: str, disabled: bool) -> dict[str, Any]:
        with self._db.connection():
            user = self._user(login)
            user.disabled_at = utc_now() if disabled else None
            user.save()
        return _user_dict(user)

    def issue_token(self, login: str, name: str = "default") -> IssuedToken:
        if not name or len(name) > 100 or any(ord(c) < 0x20 for c in name):
            raise AccountError("a token name is 1-100 printable characters")
        secret = TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        with self._db.connection():
            user = self._user(login)
            row = UserToken.create(user_id=user.id, name=name, secret_hash=self._hash(secret))
        return IssuedToken(str(row.id), secret)

    def list_tokens(self, login: str) -> list[dict[str, Any]]:
        with self._db.connection():
            user = self._user(login)
            rows = UserToken.select().where(UserToken.user_id == user.id).order_by(UserToken.created_at)
            return [
                {
                    "id": str(t.id),
                    "name": t.name,
                    "created_at": t.created_at.isoformat(),
                    "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                }
                for t in rows
            ]

    def revoke_token(self, token_id: str) -> None:
        tid = parse_uuid(token_id)
        with self._db.connection():
            row = UserToken.get_or_none(UserToken.id == tid) if tid else None
            if row is None:
                raise AccountError(f"no token {token_id!r} (see 'anyon user token LOGIN --list')")
            if row.revoked_at is None:
                row.revoked_at = utc_now()
                row.save()

    def share(self, login: str, project_id: str, *, remove: bool = False) -> None:
        """Make ``login`` a member of a project (or no longer one)."""
        pid = parse_uuid(project_id)
        with self._db.connection():
            user = self._user(login)
            if pid is None or not Project.select().where(Project.id == pid).exists():
                raise NotFound(f"Project {project_id} not found")
            query = ProjectMember.select().where(
                (ProjectMember.project_id == pid) & (ProjectMember.user_id == user.id)
            )
            if remove:
                ProjectMember.delete().where(
                    (ProjectMember.project_id == pid) & (ProjectMember.user_id == user.id)
                ).execute()
            elif not query.exists():
                ProjectMember.create(project_id=pid, user_id=user.id)

    # --- authentication (every request) -------------------------------------------------------------

    def authenticate(self, secret: str) -> Principal | None:
        """The user a presented token belongs to; None unless the token is live and the user enabled."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        with self._db.connection():
            row = UserToken.get_or_none(UserToken.secret_hash == self._hash(secret))
            return self._principal(row)

    def principal_for_token(self, token_id: str) -> Principal | None:
        tid = parse_uuid(token_id)
        if tid is None:
            return None
        with self._db.connection():
            return self._principal(UserToken.get_or_none(UserToken.id == tid))

    def _principal(self, row: UserToken | None) -> Principal | None:
        if row is None or row.revoked_at is not None:
            return None
        user = User.get_or_none(User.id == row.user_id)
        if user is None or user.disabled_at is not None:
            return None
        return Principal(user.id, user.login, admin=bool(user.is_admin), token_id=str(row.id))

    def live_token_ids(self, token_ids: set[str]) -> set[str]:
        """Of ``token_ids``, those still live (not revoked, user enabled): one query for every stream."""
        ids = [u for u in (parse_uuid(t) for t in token_ids) if u is not None]
        if not ids:
            return set()
        with self._db.connection():
            rows = (
                UserToken.select(UserToken.id)
                .join(User, on=(User.id == UserToken.user_id))
                .where(UserToken.id.in_(ids) & UserToken.revoked_at.is_null() & User.disabled_at.is_null())
            )
            return {str(r.id) for r in rows}

    # --- browser sessions (the login page) ----------------------------------------------------------

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, b"session\x00" + payload.encode(), hashlib.sha256).hexdigest()

    def new_session(self, token_id: str, seconds: int, now: float) -> str:
        """A cookie value bound to one token: revoking the token (or disabling its user) ends the session."""
        payload = f"{SESSION_VERSION}.{token_id}.{int(now) + seconds}"
        return f"{payload}.{self._mac(payload)}"

    def check_session(self, value: str, now: float) -> Principal | None:
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != SESSION_VERSION or not parts[2].isdigit():
            return None
        if not hmac.compare_digest(parts[3].encode(), self._mac(".".join(parts[:3])).encode()):
            return None
        if int(parts[2]) <= now:
            return None
        return self.principal_for_token(parts[1])


def _user_dict(user: User) -> dict[str, Any]:
    disabled: dt.datetime | None = user.disabled_at
    return {
        "id": user.id,
        "login": user.login,
        "admin": bool(user.is_admin),
        "disabled": disabled is not None,
        "created_at": user.created_at.isoformat(),
    }
