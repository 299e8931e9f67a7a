"""Cloud mode with accounts: each account has its own UI config and GitHub token.

:class:`UserScopedConfig` is a :class:`~anyon.services.board.user_config.UserConfigService` whose every call
goes to the acting account's own store, ``<data_dir>/users/<user id>/config.json`` and ``secrets.json``
(mode 0600, directory 0700). The acting account comes from the request context
(:func:`anyon.services.team.access.current_principal`), so ``/api/config``, ``/api/info``, the GitHub sign-in
and every GitHub call made for a request (push, pull request, repository list) use that account's token
without any service changing its signature. The server's API token (the admin identity), local mode and
background work that no request started keep the shared ``<data_dir>`` store; the PR monitor asks for the
token of the account that opened each pull request by id (``secret_of``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from anyon.services.board.user_config import UserConfigService
from anyon.services.db.columns import parse_uuid
from anyon.services.team.access import current_principal


class UserScopedConfig(UserConfigService):
    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir)
        self._data_dir = data_dir
        self._users: dict[str, UserConfigService] = {}
        self._users_lock = threading.Lock()

    def _store(self) -> UserConfigService | None:
        """The acting account's store; None for the shared one (this object's own base behaviour)."""
        principal = current_principal()
        if principal is None or principal.user_id is None:
            return None
        return self._store_of(principal.user_id)

    def _store_of(self, user_id: str) -> UserConfigService:
        if parse_uuid(user_id) is None:  # account ids are UUIDs we minted; nothing else becomes a path
            raise ValueError(f"not an account id: {user_id[:64]!r}")
        with self._users_lock:
            store = self._users.get(user_id)
            if store is None:
                directory = os.path.join(self._data_dir, "users", user_id)
                os.makedirs(directory, mode=0o700, exist_ok=True)
                store = UserConfigService(directory)
                self._users[user_id] = store
            return store

    @property
    def path(self) -> str:
        store = self._store()
        return super().path if store is None else store.path

    def get(self) -> dict[str, Any]:
        store = self._store()
        return super().get() if store is None else store.get()

    def secret(self, name: str) -> str | None:
        store = self._store()
        return super().secret(name) if store is None else store.secret(name)

    def secret_of(self, user_id: str | None, name: str) -> str | None:
        """``name`` from ``user_id``'s store (None: the shared one), whoever is acting."""
        return super().secret(name) if user_id is None else self._store_of(user_id).secret(name)

    def secret_states(self) -> dict[str, Any]:
        store = self._store()
        return super().secret_states() if store is None else store.secret_states()

    def save(self, body: dict[str, Any]) -> dict[str, Any]:
        store = self._store()
        return super().save(body) if store is None else store.save(body)

    def dev_login(self) -> None:
        store = self._store()
        if store is None:
            super().dev_login()
        else:
            store.dev_login()

    def github_login(self, token: str, username: str | None, email: str | None) -> None:
        store = self._store()
        if store is None:
            super().github_login(token, username, email)
        else:
            store.github_login(token, username, email)
