"""The execution limit with a per-account share (``executions.max_concurrent_per_user``, cloud mode).

A process first takes a slot of its account's own line (at most ``per_user`` running at once), then one
of the server-wide ``max_concurrent``. So one account starting many attempts waits in its own line and
cannot hold every server slot while a colleague's attempt waits behind them. The account is the one
that started the process (the request context, which the supervising task inherited); a process no
account started (the server's API token, local mode) only takes a server-wide slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from anyon.services.executions.slots import ExecutionSlots
from anyon.services.team.access import owner_id


class UserSlots(ExecutionSlots):
    def __init__(self, limit: int, per_user: int, who: Callable[[], str | None] = owner_id) -> None:
        super().__init__(limit)
        self._per_user = per_user
        self._who = who
        self._users: dict[str, ExecutionSlots] = {}
        self._held: dict[asyncio.Task[object], str] = {}

    @property
    def queued(self) -> int:
        return super().queued + sum(slots.queued for slots in self._users.values())

    async def acquire(self, on_queued: Callable[[int], None] | None = None) -> None:
        user = self._who() if self._per_user > 0 else None
        if user is None:
            await super().acquire(on_queued)
            return
        told = False

        def queued_once(position: int) -> None:
            nonlocal told
            if not told and on_queued is not None:
                told = True
                on_queued(position)

        own = self._users.setdefault(user, ExecutionSlots(self._per_user))
        await own.acquire(queued_once)
        try:
            await super().acquire(queued_once)
        except BaseException:
            own.release()
            raise
        task = asyncio.current_task()
        if task is not None:
            self._held[task] = user

    def release(self) -> None:
        """Called by the task that acquired (the engine's supervisor), so it knows whose slot it was."""
        task = asyncio.current_task()
        user = self._held.pop(task, None) if task is not None else None
        super().release()
        if user is not None:
            self._users[user].release()
