"""Reconcile and sweep: what runs on the Engine against what should, and processes nobody supervises.

Reconcile runs at start-up (before the start-up repair marks the previous run's processes failed) and
then periodically: it adopts the containers of live attempts, sweeps the ones that may still run a
previous run's agents, and removes every other container of this instance with its secrets directory.
The sweep kills every process of a container but its init and idle command, keeping the container (and
the agents' sessions in its tmpfs HOME) for the attempt's next command. Why adopted containers need it:
:mod:`anyon.services.runners.container_table`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from anyon.services.runners.base import RunnerError, RunnerUnavailable
from anyon.services.runners.container_lifecycle import AttemptContainers
from anyon.services.runners.container_spec import LABEL_ATTEMPT
from anyon.services.runners.container_table import ContainerTable
from anyon.services.runners.contracts import ReconcileResult
from anyon.services.runners.engine_client import EngineClient
from anyon.services.runners.prestart import Prestarts
from anyon.services.runners.secrets_dir import SecretsDirs, check_attempt_id

log = logging.getLogger(__name__)

#: Kills every process of the container except init (pid 1), the idle command (the oldest other process,
#: a child of init: nothing an agent starts can be older) with its ``sleep``, and itself; repeats while
#: anything is left so a forking process cannot outrun it. Shell builtins only (no subshell of its own
#: to kill). Prints the number of signals sent.
KILL_STRAYS_SCRIPT = r"""me=$$; keep=; keep_t=
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  case "$p" in 1|"$me") continue;; esac
  read -r s < "$d/stat" 2>/dev/null || continue
  s=${s##*) }; set -f; set -- $s; set +f
  [ $# -ge 20 ] && [ "$2" = 1 ] || continue
  shift 19
  if [ -z "$keep" ] || [ "$1" -lt "$keep_t" ]; then keep=$p; keep_t=$1; fi
done
sent=0; n=0
while [ "$n" -lt 40 ]; do
  found=0
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case "$p" in 1|"$me"|"$keep") continue;; esac
    read -r s < "$d/stat" 2>/dev/null || continue
    s=${s##*) }; set -f; set -- $s; set +f
    case "$1" in Z*|X*) continue;; esac
    [ "$2" = "$keep" ] && continue
    if kill -9 "$p" 2>/dev/null; then found=1; sent=$((sent+1)); fi
  done
  [ "$found" = 0 ] && break
  n=$((n+1)); sleep 0.05 2>/dev/null || sleep 1
done
echo "killed $sent"
"""


class ContainerSweeper:
    """Adopts, sweeps and removes the containers of one instance on one Engine."""

    def __init__(
        self,
        engine: EngineClient,
        containers: AttemptContainers,
        table: ContainerTable,
        secrets: SecretsDirs,
        prestarts: Prestarts,
    ) -> None:
        self._engine = engine
        self._containers = containers
        self._table = table
        self._secrets = secrets
        self._prestarts = prestarts

    async def reconcile(
        self, live_attempt_ids: set[str] | Callable[[], Awaitable[set[str]]], reserved_ids: set[str]
    ) -> ReconcileResult:
        """Adopt (and sweep) the containers of live attempts; remove every other one of this instance.

        Runs at start-up, before the start-up repair marks the previous run's processes failed, and then
        periodically (``docker.reconcile_interval_seconds``). ``live_attempt_ids`` may be a coroutine
        function: it is then read *after* the containers are listed, so a container made for an attempt
        inserted meanwhile is never mistaken for a leftover. A sweep that fails is logged and retried on
        the next run; an Engine that does not answer raises :class:`DockerUnavailable`.
        """
        adopted: list[str] = []
        removed: set[str] = set()
        swept: dict[str, int] = {}
        worktrees: list[str] = []
        listed = await self._containers.list()
        if callable(live_attempt_ids):
            live_attempt_ids = await live_attempt_ids()
        live_attempt_ids = set(live_attempt_ids) | reserved_ids
        for info in listed:
            attempt_id = info.get("Labels", {}).get(LABEL_ATTEMPT, "")
            if attempt_id in live_attempt_ids:
                fresh = attempt_id not in self._table.containers
                container = await self._containers.find(attempt_id)
                if container is not None:
                    if info.get("State") != "running":
                        await self._engine.call(lambda cid=info["Id"]: self._engine.api.start(cid))
                    self._table.containers[attempt_id] = container
                    if fresh:
                        adopted.append(attempt_id)
                if attempt_id in self._table.unswept:
                    try:
                        swept[attempt_id] = await self.kill_strays(attempt_id)
                    except RunnerUnavailable:
                        raise
                    except RunnerError as exc:
                        log.warning("could not sweep the container of attempt %s: %s", attempt_id, exc)
                continue
            if attempt_id:
                await self._prestarts.drop(attempt_id)
            await self._engine.remove_ids([info["Id"]])
            self._table.containers.pop(attempt_id, None)
            if attempt_id:
                self._table.unswept.discard(attempt_id)
                with contextlib.suppress(RunnerError):
                    await self._engine.in_thread(self._secrets.remove, attempt_id)
                removed.add(attempt_id)
                worktree = info.get("Labels", {}).get("anyon.worktree", "")
                if worktree:
                    worktrees.append(worktree)
        for attempt_id in await self._engine.in_thread(self._secrets.attempt_ids):
            if attempt_id not in live_attempt_ids:
                await self._engine.in_thread(self._secrets.remove, attempt_id)
                removed.add(attempt_id)
        return ReconcileResult(sorted(adopted), sorted(removed), swept, worktrees)

    async def kill_strays(self, attempt_id: str) -> int:
        """Kill every process in the attempt's container but its init and idle command.

        For processes nobody supervises any more: agents of a crashed server run, or processes whose exec
        was lost while the Engine was unreachable. The container itself (with its tmpfs HOME, where agents
        keep their sessions for a follow-up) stays. When no exec can start in it (e.g. its pids limit is
        exhausted), the container is restarted instead, which ends every process it runs. Returns the
        number of processes signalled; raises :class:`DockerUnavailable` when the Engine does not answer.
        """
        import docker

        check_attempt_id(attempt_id)
        await self._prestarts.drop(attempt_id)
        container = await self._containers.find(attempt_id)
        if container is None:
            self._table.unswept.discard(attempt_id)
            return 0
        try:
            state = await self._engine.call(lambda: self._engine.api.inspect_container(container.id))
        except docker.errors.NotFound:
            self._table.containers.pop(attempt_id, None)
            self._table.unswept.discard(attempt_id)
            return 0
        if not state.get("State", {}).get("Running"):
            self._table.unswept.discard(attempt_id)
            return 0
        argv = ["/bin/sh", "-c", KILL_STRAYS_SCRIPT, "anyon-sweep"]
        try:
            out = await self._engine.run_quiet(container.id, argv, timeout=30)
        except RunnerUnavailable:
            raise
        except RunnerError as exc:
            log.warning("sweeping the container of attempt %s failed (%s); restarting it", attempt_id, exc)
            await self._engine.call(lambda: self._engine.api.restart(container.id, timeout=1))
            self._table.unswept.discard(attempt_id)
            return -1
        words = out.decode(errors="replace").split()
        sent = int(words[-1]) if len(words) >= 2 and words[-2] == "killed" and words[-1].isdigit() else 0
        self._table.unswept.discard(attempt_id)
        if sent:
            log.warning("killed %d leftover process(es) in the container of attempt %s", sent, attempt_id)
        return sent
