"""Cloud mode: agents run in hardened per-attempt Docker containers; data under /var/opt/anyon.

Docker is imported lazily by the runner, so this module loads on a machine without Docker and a
cloud failure never breaks the local code path.

The environment checks (:mod:`anyon.checks`) run in ``anyon serve`` before this deployment is started.
Background jobs (orphan executions, container reconcile, worktree sweep, expiry, cache warm-up) that fail
are logged with their error and retried with a growing delay: a VM whose Docker daemon restarts, or whose
disk fills up for a while, must not lose those jobs until the next restart, and must keep serving.
"""

from __future__ import annotations

import asyncio
import logging

from anyon.deployment.base import BackgroundJob, BaseDeployment

log = logging.getLogger(__name__)


class CloudDeployment(BaseDeployment):
    mode = "cloud"
    #: seconds to wait before each retry of a failed background job; the last one repeats
    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 300.0)

    async def _guarded(self, name: str, job: BackgroundJob) -> None:
        failures = 0
        while True:
            try:
                await job()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self.retry_delays[min(failures, len(self.retry_delays) - 1)]
                failures += 1
                log.error(
                    "background task %s failed (%s: %s); retrying in %.0f s",
                    name,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=True,
                    extra={"task": name, "failures": failures},
                )
            await asyncio.sleep(delay)
