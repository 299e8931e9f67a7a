"""The Deployment: what the API needs from a running server, whatever the mode.

Built in the seed's order — config → database → services → background tasks — by
:func:`anyon.deployment.factory.build_deployment`. LocalDeployment and CloudDeployment share this
class; they differ in the paths of their config, the ``is_cloud`` flag and the runner that
executions use (host processes vs. per-attempt containers).
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Awaitable, Callable
from typing import Protocol

from anyon.config.model import AnyonConfig
from anyon.services.container import Services

log = logging.getLogger(__name__)

BackgroundJob = Callable[[], Awaitable[None]]


class Deployment(Protocol):
    config: AnyonConfig
    services: Services

    @property
    def is_cloud(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BaseDeployment:
    """Owns the services and the background tasks; the API only calls ``start``/``stop``."""

    mode = "local"

    def __init__(self, config: AnyonConfig, services: Services) -> None:
        self.config = config
        self.services = services
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    @property
    def is_cloud(self) -> bool:
        return self.config.is_cloud

    def background_jobs(self) -> list[tuple[str, BackgroundJob]]:
        """Jobs to run once the server listens; each failure is logged, never fatal."""
        return self.services.background_jobs()

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.services.start()
        for name, job in self.background_jobs():
            self._tasks.append(asyncio.create_task(self._guarded(name, job), name=f"anyon:{name}"))
        log.info("deployment started", extra={"mode": self.mode, "platform": platform.system()})

    async def _guarded(self, name: str, job: BackgroundJob) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s failed", name)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.services.stop()
        log.info("deployment stopped", extra={"mode": self.mode})
