"""A cloud server shared by a team: accounts, the access scope, the audit log and the stream watch.

Built by the composition root (``container.py``) in cloud mode only; local mode stays single-user and
has none of it. ``StreamWatch`` is what makes revocation reach connections that are already open: every
authenticated WebSocket and SSE stream is registered with its token, and every
``auth.revocation_check_seconds`` the tokens of the open streams are checked in one query; the streams
of a revoked token or a disabled user are closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import count

from anyon.config.model import AnyonConfig
from anyon.services.db.database import Database
from anyon.services.team.access import AccessScope
from anyon.services.team.accounts import AccountService, load_key
from anyon.services.team.audit import AuditLog

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


@dataclass
class StreamWatch:
    accounts: AccountService
    interval: float
    _streams: dict[int, tuple[str, Closer, Callable[[], bool]]] = field(default_factory=dict)
    _ids: count[int] = field(default_factory=count)

    def register(self, token_id: str, close: Closer, *, alive: Callable[[], bool] = lambda: True) -> int:
        """Watch one open stream; ``alive`` lets a stream that ended without unregistering be dropped."""
        handle = next(self._ids)
        self._streams[handle] = (token_id, close, alive)
        return handle

    def unregister(self, handle: int) -> None:
        self._streams.pop(handle, None)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def sweep(self) -> int:
        """Close the streams whose token is no longer live; returns how many were closed."""
        for handle, (_, _, alive) in list(self._streams.items()):
            if not alive():
                self._streams.pop(handle, None)
        if not self._streams:
            return 0
        tokens = {token for token, _, _ in self._streams.values()}
        live = await asyncio.to_thread(self.accounts.live_token_ids, tokens)
        dead = [(h, close) for h, (token, close, _) in list(self._streams.items()) if token not in live]
        for handle, close in dead:
            self._streams.pop(handle, None)
            try:
                await close()
            except Exception as exc:  # the client may be gone already
                log.debug("closing a revoked stream: %s", exc)
        if dead:
            log.info("closed %d stream(s) of revoked tokens or disabled users", len(dead))
        return len(dead)

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception as exc:  # a database hiccup must not end the watch
                log.warning("stream revocation check failed: %s", exc)


@dataclass
class Team:
    accounts: AccountService
    scope: AccessScope
    audit: AuditLog
    watch: StreamWatch

    def jobs(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        return [("stream-revocation", self.watch.loop), ("audit-retention", self.audit.prune_loop)]


def audit_dir(config: AnyonConfig) -> str:
    return os.path.join(config.paths.data_dir, "audit")


def build_team(config: AnyonConfig, database: Database) -> Team | None:
    """The team services of a cloud server; None in local mode (single user, no accounts)."""
    if not config.is_cloud:
        return None
    accounts = AccountService(database, load_key(config.paths.data_dir))
    return Team(
        accounts=accounts,
        scope=AccessScope(database, config.auth.project_visibility),
        audit=AuditLog(audit_dir(config), config.retention.audit_days),
        watch=StreamWatch(accounts, config.auth.revocation_check_seconds),
    )
