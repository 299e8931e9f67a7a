"""Cloud mode: one hardened container per attempt; commands run in it through Engine API execs.

Design notes (spec §4.4 and §8, ARCHITECTURE decisions 3, 4, 7):

* **Path identity, nothing shared writable** — the worktree (with the attempt's own repository in its
  ``.git``) is bind-mounted read-write and the project's object store read-only, each at its host path, so
  git inside the container works unchanged while nothing it writes is read by the host's git as
  configuration (THREAT-MODEL rules 1-2; :mod:`anyon.services.git.isolation`).
* **Hardening** — the container runs as ``docker.user`` (resolved on the host), with every capability
  dropped, ``no-new-privileges``, a read-only root filesystem, tmpfs ``/tmp`` and HOME, an init process,
  memory/swap/CPU/pids limits, the configured network (``none`` allowed), only allow-listed variables
  from the server's environment, and no host path besides the two above and the attempt's secrets
  directory (read-only).
* **Exec protocol** — every command runs under a one-line launcher that prints its pid (the exec is a
  session leader, so that pid is also the process group of everything it starts) before ``exec``-ing
  the command. ``stop()`` signals that group *inside* the container, so agents and their children stop
  rather than only the client side. A later warm pool can pre-start the same launcher waiting for a
  command line: :class:`DockerProcess` is built from an already-open exec stream either way.
* **Adopted containers start empty** — after a crash (kill -9, power loss) a container can still run the
  agents the previous server run started, writing the worktree with nobody capturing their output. Their
  output cannot be reattached (the exec streams died with the server), so every container this server
  run did not create is *swept* — every process but its init and its idle command is killed — before the
  start-up repair marks its processes ``failed`` and before any command of this run starts in it. A
  process whose exec stream or status was lost while the Engine was unreachable marks its attempt for the
  same sweep, run as soon as the Engine answers again (periodic reconcile, Stop, next command).
* **One Engine API client** (docker-py, thread-safe connection pool) is shared by every call; its
  blocking calls run in worker threads. Exec output streams over an asyncio connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import grp
import hashlib
import logging
import math
import os
import pwd
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from anyon.config.model import DockerSettings
from anyon.services.runners.agent_home_sync import REFRESH_SCRIPT, home_stamp
from anyon.services.runners.base import (
    SIGKILL_EXIT,
    ChunkStream,
    ExecutableNotFound,
    RunnerError,
    RunnerUnavailable,
    RunningProcess,
    StdinClosed,
)
from anyon.services.runners.contracts import ReconcileResult
from anyon.services.runners.engine_stream import STDERR, read_frame, start_exec
from anyon.services.runners.secrets_dir import CONTAINER_SECRETS_DIR, SecretsDirs, check_attempt_id
from anyon.services.runners.warm import (
    CWD_DENIED,
    NO_CWD,
    NOT_FOUND,
    PRESTART_LAUNCHER,
    PRESTART_NAME,
    STARTED,
    PrestartedExec,
    command_line,
)

log = logging.getLogger(__name__)

LABEL_MANAGED = "anyon.managed"
LABEL_INSTANCE = "anyon.instance"
LABEL_ATTEMPT = "anyon.attempt"
#: HOME inside every container: a tmpfs owned by the container user.
CONTAINER_HOME = "/home/anyon"
#: Where the deployment's agent home (logins) is mounted, read-only; it is copied into HOME at start so an
#: agent works on its own copy and can never change the shared credentials.
CONTAINER_AGENT_HOME = "/opt/anyon/agent-home"
BUILD_HINT = "build it with `bash scripts/build-test-image.sh` (tests) or from deploy/image/Dockerfile"

#: Keeps the container alive without a busy process; exits at once on TERM/INT.
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
#: First stdout line: the pid (= process group) or ``!notfound``; then the command replaces the shell.
LAUNCHER = (
    'command -v "$1" >/dev/null 2>&1 || { printf "!notfound\\n"; exit 127; }; printf "%s\\n" "$$"; exec "$@"'
)
#: Escalation inside the container: INT, TERM, KILL to the group, each while any member is alive.
#: ``kill -s SIG -- -PGID`` is what dash needs; busybox ash rejects ``--`` and wants ``kill -s SIG -PGID``.
STOP_SCRIPT = """g=$1; ticks=$2
sig() { kill -s "$1" -- "-$g" 2>/dev/null || kill -s "$1" "-$g" 2>/dev/null; }
alive() { sig 0; }
for s in INT TERM KILL; do
  alive || exit 0
  sig "$s"
  n=0
  while alive && [ "$n" -lt "$ticks" ]; do sleep 0.05 2>/dev/null || sleep 1; n=$((n+1)); done
done
alive && exit 1
exit 0"""
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
_STOP_TICK_SECONDS = 0.05
# the container cgroup's OOM-kill counter and its refused-fork counter, cgroup v2 or v1 layout
_CGROUP_PROBE = (
    "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null; "
    "echo --pids; cat /sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events 2>/dev/null; true"
)
_HANDSHAKE_LIMIT = 4096


class DockerUnavailable(RunnerUnavailable):
    """The Docker Engine does not answer."""


class ImageMissing(RunnerError):
    """The runner image is not present on the Docker host."""


@dataclass
class _Container:
    id: str
    worktree: str
    git_dir: str
    oom_kills: int = 0  # the container's oom_kill counter last seen, to attribute new kills
    pids_max: int = 0  # its pids.events "max" counter (forks refused at the pids limit) last seen


class _CgroupCounts(NamedTuple):
    oom_kills: int
    pids_max: int


def resolve_user(spec: str) -> tuple[int, int]:
    """``docker.user`` → (uid, gid): a host user name (optionally ``name:group``) or ``uid[:gid]``."""
    user, _, group = spec.partition(":")
    try:
        if user.isdigit():
            uid = int(user)
            default_gid = uid
            with contextlib.suppress(KeyError):
                default_gid = pwd.getpwuid(uid).pw_gid
        else:
            entry = pwd.getpwnam(user)
            uid, default_gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        raise RunnerError(
            f"docker.user {spec!r}: no user {user!r} on this host; use a user name or uid:gid"
        ) from None
    if not group:
        return uid, default_gid
    if group.isdigit():
        return uid, int(group)
    try:
        return uid, grp.getgrnam(group).gr_gid
    except KeyError:
        raise RunnerError(f"docker.user {spec!r}: no group {group!r} on this host") from None


class DockerProcess(RunningProcess):
    """A command running in an attempt's container, read from its exec stream."""

    def __init__(
        self,
        runner: DockerRunner,
        exec_id: str,
        container_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        attempt_id: str = "",
    ) -> None:
        self._runner = runner
        self.attempt_id = attempt_id
        self.id = exec_id
        self.container_id = container_id
        self.pid = 0
        self._reader = reader
        self._writer = writer
        self._out = ChunkStream()
        self._err = ChunkStream()
        self.stdout = self._out
        self.stderr = self._err
        self._eof = asyncio.Event()
        self._wait_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        # the exec stream carries stdin too: writes go one at a time, in order, while it is open
        self._stdin_lock = asyncio.Lock()
        self._stdin_open = False
        #: set at the first output (or the end): background work waits for it, not the agent
        self.output_seen = asyncio.Event()

    async def _start_prestarted(
        self,
        pre: PrestartedExec,
        argv0: str,
        cwd: str,
        line: bytes,
        stdin: bytes | None,
        interactive: bool = False,
    ) -> bool:
        """Hand ``line`` (then stdin, then end-of-input unless ``interactive``) to a waiting launcher.

        Returns False when the launcher was gone before it read the line: nothing ran, and the caller
        may use a fresh exec instead.
        """
        self.pid = pre.pid
        if pre.early_stderr:
            await self._err.feed(pre.early_stderr)
        self._stdin_open = interactive
        self._tasks.append(
            asyncio.create_task(self._feed_stdin((stdin or b""), prefix=line, close=not interactive))
        )
        try:
            answer = await self._handshake()
        except BaseException:
            self._close()
            raise
        if answer == STARTED:
            self._tasks.append(asyncio.create_task(self._pump()))
            return True
        self._close()
        if answer == NOT_FOUND:
            raise ExecutableNotFound(argv0, "in the attempt's container")
        if answer == NO_CWD:
            raise RunnerError(
                f"could not start {argv0!r} in the container: chdir to {cwd!r}: no such file or directory"
            )
        if answer == CWD_DENIED:
            raise RunnerError(f"could not start {argv0!r} in the container: cannot enter {cwd!r}")
        return False

    async def _start(self, argv0: str, stdin: bytes | None, interactive: bool = False) -> None:
        """Feed stdin, read the launcher's pid line, then pump frames in the background."""
        self._stdin_open = interactive
        if stdin is not None or interactive:
            self._tasks.append(asyncio.create_task(self._feed_stdin(stdin or b"", close=not interactive)))
        try:
            first = await self._handshake()
        except BaseException:
            self._close()
            raise
        if first == b"!notfound":
            self._close()
            raise ExecutableNotFound(argv0, "in the attempt's container")
        if not first.isdigit():
            self._close()
            raise RunnerError(f"could not start {argv0!r} in the container: {first.decode(errors='replace')}")
        self.pid = int(first)
        self._tasks.append(asyncio.create_task(self._pump()))

    async def _handshake(self) -> bytes:
        pending = b""
        while b"\n" not in pending:
            frame = await read_frame(self._reader)
            if frame is None:
                return pending.strip() or b"the exec ended before the command started"
            stream, payload = frame
            if stream == STDERR:
                await self._err.feed(payload)
                continue
            pending += payload
            if len(pending) > _HANDSHAKE_LIMIT:
                break
        line, _, rest = pending.partition(b"\n")
        if rest:
            await self._out.feed(rest)
        return line.strip()

    async def _feed_stdin(self, data: bytes, prefix: bytes = b"", *, close: bool = True) -> None:
        async with self._stdin_lock:
            with contextlib.suppress(OSError, RuntimeError):
                if prefix:
                    self._writer.write(prefix)
                if data:
                    self._writer.write(data)
                await self._writer.drain()
                if close:
                    # half-close: the daemon closes the process's stdin, the output side stays open
                    self._writer.write_eof()

    async def write(self, data: bytes) -> None:
        async with self._stdin_lock:
            if not self._stdin_open or self._writer.is_closing() or self._eof.is_set():
                raise StdinClosed("the process's stdin is closed")
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                self._stdin_open = False
                raise StdinClosed(f"the process no longer reads its stdin: {exc}") from exc

    async def close_stdin(self) -> None:
        async with self._stdin_lock:
            if not self._stdin_open:
                return
            self._stdin_open = False
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.write_eof()

    async def _pump(self) -> None:
        try:
            while (frame := await read_frame(self._reader)) is not None:
                stream, payload = frame
                await (self._err if stream == STDERR else self._out).feed(payload)
                self.output_seen.set()
        finally:
            self.output_seen.set()
            self._eof.set()
            self._close()
            await self._out.end()
            await self._err.end()

    def _close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.close()

    async def wait(self) -> int:
        if self.returncode is not None:
            return self.returncode
        async with self._wait_lock:
            if self.returncode is not None:
                return self.returncode
            while True:
                if not self._eof.is_set():
                    # the stream ends with the process, unless a child it left behind holds the pipe
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._eof.wait(), 1.0)
                try:
                    info = await self._runner._call(self._runner.api.exec_inspect, self.id)
                except RunnerUnavailable:
                    # the exec's fate is unknown: whatever still runs is killed once the Engine answers
                    self._runner.lost(self.attempt_id)
                    raise
                if not info.get("Running") and info.get("ExitCode") is not None:
                    break
                if self._eof.is_set():
                    await asyncio.sleep(0.01)
            code = int(info["ExitCode"])
            # also on a clean exit: a child killed for memory or a refused fork leaves the main
            # process's exit code alone, and the counters are the only witness
            oom, self.pids_limit_hit = await self._runner._cgroup_faults(self.container_id)
            if code == SIGKILL_EXIT:
                self.oom_killed = oom or await self._runner._oom_flagged(self.container_id)
            else:
                self.child_oom_killed = oom
            self.returncode = code
            return code

    async def stop(self, escalation_seconds: float = 2.0) -> int:
        self.stop_requested = True
        if self.returncode is None and self.pid:
            ticks = max(1, math.ceil(escalation_seconds / _STOP_TICK_SECONDS))
            argv = ["/bin/sh", "-c", STOP_SCRIPT, "anyon-stop", str(self.pid), str(ticks)]
            try:
                await self._runner._run_quiet(self.container_id, argv, timeout=4 * escalation_seconds + 10)
            except RunnerUnavailable:
                self._runner.lost(self.attempt_id)
                raise
            except RunnerError as exc:
                # e.g. the pids limit is exhausted so no exec can start: stopping the container is
                # the only way left to reach the process
                log.warning(
                    "stop inside container %s failed (%s); killing the container", self.container_id, exc
                )
                await self._runner._kill_container(self.container_id)
        try:
            return await asyncio.wait_for(asyncio.shield(self.wait()), escalation_seconds + 10)
        except TimeoutError:
            log.warning("process %s outlived its stop; killing container %s", self.id, self.container_id)
            await self._runner._kill_container(self.container_id)
            return await self.wait()


class DockerRunner:
    """Runs attempts' commands in per-attempt containers (cloud mode).

    ``instance_id`` names this server's data directory in the ``anyon.instance`` label, so two servers
    sharing a daemon never touch each other's containers. ``host_env`` is the server's environment,
    from which only ``docker.env_allowlist`` names reach containers.
    """

    #: argv put before every command an agent can influence (the Swarm runner's ``setpriv`` wrapper)
    exec_prefix: tuple[str, ...] = ()
    #: TLS for a ``tcp://`` engine (a swarm node's, see swarm_node.py); ``None``: unix socket or plain tcp
    tls: ssl.SSLContext | None = None

    def __init__(
        self,
        settings: DockerSettings,
        instance_id: str,
        secrets_root: str | Path,
        *,
        host_env: Mapping[str, str] | None = None,
        client: Any | None = None,
        agent_home: str | None = None,
        agent_home_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.agent_home = agent_home
        # cloud mode with accounts: the home of the account that started the attempt (agents/agent_home.py)
        self._agent_home_of = agent_home_of
        self.instance_id = instance_id
        self.uid, self.gid = resolve_user(settings.user)
        self.secrets = SecretsDirs(secrets_root, self.uid, self.gid)
        self._host_env = {k: v for k, v in (host_env or {}).items() if k in settings.env_allowlist}
        self._client = client
        self._client_lock = threading.Lock()
        self._containers: dict[str, _Container] = {}
        #: container id → stamp of the agent home last copied into its HOME (agent_home_sync.py)
        self._home_copies: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # one waiting launcher per attempt (see warm.py), and the task starting the next one
        self._prestarted: dict[str, PrestartedExec] = {}
        self._prestarting: dict[str, asyncio.Task[PrestartedExec | None]] = {}
        self._refills: set[asyncio.Task[None]] = set()
        #: attempt ids of warm containers waiting for their attempt (warm.py); never reconciled away
        self.reserved_ids: set[str] = set()
        #: attempts whose container may run processes nobody supervises (see "Adopted containers start
        #: empty"): swept before their next command, by Stop and by the periodic reconcile
        self._unswept: set[str] = set()
        self._closed = False
        # docker-py calls block; a pool of our own keeps them from starving the loop's default executor
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="anyon-docker")

    # --- Engine API client --------------------------------------------------------------------

    @property
    def api(self) -> Any:
        """The one docker-py ``APIClient``; created on first use so a stopped daemon never blocks start-up."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import docker  # lazy: local mode never imports docker

                    try:
                        self._client = self._make_client()
                    except docker.errors.DockerException as exc:
                        raise self._unavailable(exc) from exc
        return self._client

    def _make_client(self) -> Any:
        """The docker-py ``APIClient`` (a swarm node's engine makes a TLS one)."""
        import docker

        return docker.APIClient(base_url=self.settings.host, version="auto", timeout=60)

    async def _start_exec(self, exec_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await start_exec(self.settings.host, self.api.api_version, exec_id, self.tls)

    def _unavailable(self, exc: BaseException) -> DockerUnavailable:
        return DockerUnavailable(
            f"the Docker Engine at {self.settings.host} does not answer ({exc}); start it "
            "(e.g. `systemctl start docker`) or fix docker.host in the settings"
        )

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking docker-py call in a worker thread, translating connection failures."""
        import docker
        import requests

        def call() -> Any:
            return fn(*args, **kwargs)

        try:
            return await self._in_thread(call)
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            if isinstance(exc, docker.errors.APIError):
                raise
            raise self._unavailable(exc) from exc

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def ping(self) -> None:
        """Raise :class:`DockerUnavailable` unless the daemon answers."""
        try:
            await self._call(lambda: self.api.ping())
        except DockerUnavailable:
            raise
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def check_image(self) -> None:
        """Raise :class:`ImageMissing` (naming the image and how to build it) unless it is present."""
        import docker

        try:
            await self._call(lambda: self.api.inspect_image(self.settings.image))
        except docker.errors.ImageNotFound as exc:
            raise self._image_missing() from exc

    def _image_missing(self) -> ImageMissing:
        return ImageMissing(
            f"the runner image {self.settings.image!r} is not on the Docker host; {BUILD_HINT}"
        )

    async def close(self) -> None:
        """Close the Engine API client and the worker threads; containers keep running.

        Waiting launchers end with our side of their stream (their stdin closes).
        """
        for task in list(self._refills):
            task.cancel()
        for attempt_id in list(self._prestarted) + list(self._prestarting):
            await self._drop_prestarted(attempt_id)
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            await self._in_thread(self._client.close)
        self._executor.shutdown(wait=False)

    # --- containers ---------------------------------------------------------------------------

    def container_name(self, attempt_id: str) -> str:
        tag = hashlib.sha1(self.instance_id.encode()).hexdigest()[:8]
        return f"anyon-{tag}-{attempt_id}"

    def labels(self, attempt_id: str) -> dict[str, str]:
        return {LABEL_MANAGED: "1", LABEL_INSTANCE: self.instance_id, LABEL_ATTEMPT: attempt_id}

    def _lock(self, attempt_id: str) -> asyncio.Lock:
        return self._locks.setdefault(attempt_id, asyncio.Lock())

    async def _list(self, attempt_id: str | None = None) -> list[dict[str, Any]]:
        labels = [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={self.instance_id}"]
        if attempt_id is not None:
            labels.append(f"{LABEL_ATTEMPT}={attempt_id}")
        result: list[dict[str, Any]] = await self._call(
            lambda: self.api.containers(all=True, filters={"label": labels})
        )
        return result

    async def ensure_container(self, attempt_id: str, worktree_path: str, objects_dir: str) -> str:
        """Return the id of the attempt's running container, creating or restarting it as needed.

        ``objects_dir`` is the project's object store, mounted read-only (the attempt borrows from it).
        """
        import docker

        check_attempt_id(attempt_id)
        worktree = os.path.realpath(worktree_path)
        git_dir = os.path.realpath(objects_dir)
        for label, path in (("worktree", worktree), ("project object store", git_dir)):
            if not os.path.isdir(path):
                raise RunnerError(f"the attempt's {label} {path!r} does not exist")
        async with self._lock(attempt_id):
            existing = await self._find(attempt_id)
            state: dict[str, Any] | None = None
            if existing is not None:
                try:
                    state = await self._call(lambda: self.api.inspect_container(existing.id))
                except docker.errors.NotFound:
                    self._containers.pop(attempt_id, None)
                    existing = None
            home = await self._in_thread(self.home_of, attempt_id)
            if existing is not None and state is not None:
                if (existing.worktree, existing.git_dir) == (worktree, git_dir) and self._mounts_match(
                    state, worktree, git_dir, home
                ):
                    if not state["State"]["Running"]:
                        await self._call(lambda: self.api.start(existing.id))
                    self._containers[attempt_id] = existing
                    self.prestart(attempt_id)
                    return existing.id
                await self._drop_prestarted(attempt_id)
                await self._remove_ids([existing.id])
                self._containers.pop(attempt_id, None)
            container_id = await self._create(attempt_id, worktree, git_dir, home)
            self.prestart(attempt_id)
            return container_id

    def home_of(self, attempt_id: str) -> str | None:
        """The agent home an attempt's container gets: its account's, else the deployment's (blocking)."""
        if self._agent_home_of is not None:
            return self._agent_home_of(attempt_id)
        return self.agent_home

    async def _find(self, attempt_id: str) -> _Container | None:
        cached = self._containers.get(attempt_id)
        if cached is not None:
            return cached
        found = await self._list(attempt_id)
        if not found:
            return None
        info = found[0]
        mounts = {m.get("Destination"): m.get("Source") for m in info.get("Mounts", [])}
        worktree = info["Labels"].get("anyon.worktree", "")
        git_dir = info["Labels"].get("anyon.git-dir", "")
        if mounts.get(worktree) != worktree or mounts.get(git_dir) != git_dir:
            worktree = git_dir = ""
        container = _Container(info["Id"], worktree, git_dir)
        running = info.get("State") == "running"
        counts = await self._cgroup_counts(info["Id"]) if running else None
        if counts is not None:
            container.oom_kills, container.pids_max = counts
        if running:  # made by an earlier server run: what runs in it is nobody's
            self._unswept.add(attempt_id)
        return container

    @staticmethod
    def _mounts_match(state: dict[str, Any], worktree: str, git_dir: str, home: str | None) -> bool:
        """Are these the mounts the attempt needs, the agent home of its account included? (A warm
        container, made before its attempt had an account, is remade for an account with its own home.)"""
        mounts = {m.get("Destination"): m for m in state.get("Mounts", [])}
        shared = mounts.get(git_dir) or {}
        mounted_home = (mounts.get(CONTAINER_AGENT_HOME) or {}).get("Source")
        wanted_home = home if home and os.path.isdir(home) else None
        return (
            (mounts.get(worktree) or {}).get("Source") == worktree
            and shared.get("Source") == git_dir
            and not shared.get("RW", True)
            and mounted_home == wanted_home
        )

    def _base_env(self, attempt_id: str, worktree: str) -> dict[str, str]:
        return {
            **self._host_env,
            "HOME": CONTAINER_HOME,
            "ANYON_ATTEMPT_ID": attempt_id,
            "ANYON_WORKSPACE": worktree,
            "ANYON_SECRET_DIR": CONTAINER_SECRETS_DIR,
        }

    def host_config_kwargs(
        self, worktree: str, git_dir: str, secrets_dir: str, home: str | None = None
    ) -> dict[str, Any]:
        """Everything that hardens and mounts a container, as ``create_host_config`` arguments."""
        from docker.types import Mount

        s = self.settings
        tmpfs_opts = f"rw,nosuid,nodev,size={s.tmpfs_size}"
        kwargs: dict[str, Any] = {
            "mounts": [
                Mount(target=worktree, source=worktree, type="bind", read_only=False),
                Mount(target=git_dir, source=git_dir, type="bind", read_only=True),
                Mount(target=CONTAINER_SECRETS_DIR, source=secrets_dir, type="bind", read_only=True),
                *self._agent_home_mounts(home),
            ],
            "tmpfs": {
                "/tmp": tmpfs_opts,
                CONTAINER_HOME: f"{tmpfs_opts},uid={self.uid},gid={self.gid},mode=0700",
            },
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "read_only": s.read_only_rootfs,
            "init": True,
            "network_mode": s.network,
            "pids_limit": s.pids_limit,
            "nano_cpus": int(s.cpus * 1e9) if s.cpus > 0 else None,
            "mem_limit": s.memory if s.memory > 0 else None,
            "memswap_limit": s.memory_swap if s.memory > 0 and s.memory_swap > 0 else None,
            "ipc_mode": "private",
        }
        return {k: v for k, v in kwargs.items() if v is not None}

    @staticmethod
    def _agent_home_mounts(home: str | None) -> list[Any]:
        from docker.types import Mount

        if not home or not os.path.isdir(home):
            return []
        return [Mount(target=CONTAINER_AGENT_HOME, source=home, type="bind", read_only=True)]

    def _share_agent_home(self, home: str | None) -> None:
        """A root server gives the agent home to the container user, who must read it (like secrets_dir)."""
        if not home or os.geteuid() != 0 or (self.uid, self.gid) == (0, 0):
            return
        for root, dirs, files in os.walk(home):
            for name in [".", *dirs, *files]:
                with contextlib.suppress(OSError):
                    os.lchown(os.path.join(root, name), self.uid, self.gid)

    async def _copy_agent_home(self, container_id: str, home: str | None) -> None:
        """The container's HOME is a copy of the agent home (``home``: its account's), so its agents are
        signed in: made when the container starts, and made again before a process starts when the agent
        home changed since (a login in the browser after the container was created; see agent_home_sync.py).
        """
        if not home:
            return
        stamp = await self._in_thread(home_stamp, home)
        if stamp is None or self._home_copies.get(container_id) == stamp:
            return
        await self._in_thread(self._share_agent_home, home)
        argv = ["/bin/sh", "-c", REFRESH_SCRIPT, CONTAINER_AGENT_HOME, stamp]
        try:
            await self._run_quiet(container_id, argv, 30)
        except RunnerError as exc:
            log.warning("copying the agent home into container %s failed: %s", container_id[:12], exc)
            return
        if len(self._home_copies) >= 4096:  # ids of removed containers: forget them all, a copy is cheap
            self._home_copies.clear()
        self._home_copies[container_id] = stamp

    async def _create(self, attempt_id: str, worktree: str, git_dir: str, home: str | None) -> str:
        import docker

        secrets_dir = await self._in_thread(self.secrets.ensure, attempt_id)
        await self._in_thread(self._share_agent_home, home)
        labels = {**self.labels(attempt_id), "anyon.worktree": worktree, "anyon.git-dir": git_dir}
        container_id: str | None = None
        try:
            host_config = self.api.create_host_config(
                **self.host_config_kwargs(worktree, git_dir, str(secrets_dir), home)
            )
            created = await self._call(
                lambda: self.api.create_container(
                    self.settings.image,
                    command=IDLE_COMMAND,
                    user=f"{self.uid}:{self.gid}",
                    environment=self._base_env(attempt_id, worktree),
                    working_dir=worktree,
                    labels=labels,
                    name=self.container_name(attempt_id),
                    host_config=host_config,
                    detach=True,
                )
            )
            container_id = str(created["Id"])
            await self._call(lambda: self.api.start(container_id))
            await self._copy_agent_home(container_id, home)
        except docker.errors.ImageNotFound as exc:
            await self._undo_create(attempt_id, container_id)
            raise self._image_missing() from exc
        except docker.errors.APIError as exc:
            await self._undo_create(attempt_id, container_id)
            raise RunnerError(
                f"could not create the container of attempt {attempt_id}: {exc.explanation}"
            ) from exc
        except BaseException:
            await self._undo_create(attempt_id, container_id)
            raise
        self._containers[attempt_id] = _Container(container_id, worktree, git_dir)
        self._unswept.discard(attempt_id)
        log.info("started container %s for attempt %s", container_id[:12], attempt_id)
        return container_id

    async def _undo_create(self, attempt_id: str, container_id: str | None) -> None:
        """Leave nothing half-created behind: the container (if any) and the secrets directory."""
        with contextlib.suppress(Exception):
            ids = [container_id] if container_id else [c["Id"] for c in await self._list(attempt_id)]
            await self._remove_ids(ids)
        await self._in_thread(self.secrets.remove, attempt_id)

    async def _remove_ids(self, ids: list[str]) -> None:
        import docker

        for container_id in ids:
            with contextlib.suppress(docker.errors.NotFound):
                await self._call(lambda cid=container_id: self.api.remove_container(cid, force=True, v=True))

    async def remove_container(self, attempt_id: str) -> bool:
        """Tear down the attempt's container and its secrets directory (spec §8); idempotent."""
        check_attempt_id(attempt_id)
        await self._drop_prestarted(attempt_id)
        async with self._lock(attempt_id):
            await self._drop_prestarted(attempt_id)
            ids = [c["Id"] for c in await self._list(attempt_id)]
            await self._remove_ids(ids)
            self._containers.pop(attempt_id, None)
            self._unswept.discard(attempt_id)
            removed_secrets = await self._in_thread(self.secrets.remove, attempt_id)
        self._locks.pop(attempt_id, None)
        return bool(ids) or removed_secrets

    async def reconcile(
        self, live_attempt_ids: set[str] | Callable[[], Awaitable[set[str]]]
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
        listed = await self._list()
        if callable(live_attempt_ids):
            live_attempt_ids = await live_attempt_ids()
        live_attempt_ids = set(live_attempt_ids) | self.reserved_ids
        for info in listed:
            attempt_id = info.get("Labels", {}).get(LABEL_ATTEMPT, "")
            if attempt_id in live_attempt_ids:
                fresh = attempt_id not in self._containers
                container = await self._find(attempt_id)
                if container is not None:
                    if info.get("State") != "running":
                        await self._call(lambda cid=info["Id"]: self.api.start(cid))
                    self._containers[attempt_id] = container
                    if fresh:
                        adopted.append(attempt_id)
                if attempt_id in self._unswept:
                    try:
                        swept[attempt_id] = await self.kill_strays(attempt_id)
                    except RunnerUnavailable:
                        raise
                    except RunnerError as exc:
                        log.warning("could not sweep the container of attempt %s: %s", attempt_id, exc)
                continue
            if attempt_id:
                await self._drop_prestarted(attempt_id)
            await self._remove_ids([info["Id"]])
            self._containers.pop(attempt_id, None)
            if attempt_id:
                self._unswept.discard(attempt_id)
                with contextlib.suppress(RunnerError):
                    await self._in_thread(self.secrets.remove, attempt_id)
                removed.add(attempt_id)
                worktree = info.get("Labels", {}).get("anyon.worktree", "")
                if worktree:
                    worktrees.append(worktree)
        for attempt_id in await self._in_thread(self.secrets.attempt_ids):
            if attempt_id not in live_attempt_ids:
                await self._in_thread(self.secrets.remove, attempt_id)
                removed.add(attempt_id)
        return ReconcileResult(sorted(adopted), sorted(removed), swept, worktrees)

    def track(self, attempt_id: str, container_id: str, worktree: str, git_dir: str) -> None:
        """Take over a container this server run just made through another API (a Swarm task).

        It is fresh, so nothing in it needs a sweep, and its cgroup counters start at zero.
        """
        self._containers[attempt_id] = _Container(container_id, worktree, git_dir)
        self._unswept.discard(attempt_id)

    async def forget(self, attempt_id: str) -> None:
        """Drop what this runner knows of the attempt's container (it was removed elsewhere)."""
        await self._drop_prestarted(attempt_id)
        self._containers.pop(attempt_id, None)
        self._unswept.discard(attempt_id)

    def lost(self, attempt_id: str) -> None:
        """A process of the attempt was lost track of: its container is swept before it is used again."""
        if attempt_id:
            self._unswept.add(attempt_id)

    def unswept(self, attempt_id: str) -> bool:
        """Whether the attempt's container may still run processes this server does not supervise."""
        return attempt_id in self._unswept

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
        await self._drop_prestarted(attempt_id)
        container = await self._find(attempt_id)
        if container is None:
            self._unswept.discard(attempt_id)
            return 0
        try:
            state = await self._call(lambda: self.api.inspect_container(container.id))
        except docker.errors.NotFound:
            self._containers.pop(attempt_id, None)
            self._unswept.discard(attempt_id)
            return 0
        if not state.get("State", {}).get("Running"):
            self._unswept.discard(attempt_id)
            return 0
        argv = ["/bin/sh", "-c", KILL_STRAYS_SCRIPT, "anyon-sweep"]
        try:
            out = await self._run_quiet(container.id, argv, timeout=30)
        except RunnerUnavailable:
            raise
        except RunnerError as exc:
            log.warning("sweeping the container of attempt %s failed (%s); restarting it", attempt_id, exc)
            await self._call(lambda: self.api.restart(container.id, timeout=1))
            self._unswept.discard(attempt_id)
            return -1
        words = out.decode(errors="replace").split()
        sent = int(words[-1]) if len(words) >= 2 and words[-2] == "killed" and words[-1].isdigit() else 0
        self._unswept.discard(attempt_id)
        if sent:
            log.warning("killed %d leftover process(es) in the container of attempt %s", sent, attempt_id)
        return sent

    def write_secrets(
        self, attempt_id: str, github_token: str | None, claude_credentials: str | None
    ) -> Path:
        """(Re)write the attempt's secrets directory; the next command sees them (spec §4.4)."""
        return self.secrets.write(attempt_id, github_token, claude_credentials)

    # --- processes ----------------------------------------------------------------------------

    async def spawn(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        stdin: bytes | None = None,
        *,
        attempt_id: str | None = None,
        interactive: bool = False,
    ) -> DockerProcess:

        if not argv:
            raise RunnerError("nothing to run: the command is empty")
        if attempt_id is None:
            raise RunnerError("the Docker runner needs the attempt id to find the attempt's container")
        container = await self._find(check_attempt_id(attempt_id))
        if container is None:
            raise RunnerError(f"attempt {attempt_id} has no container; it must be provisioned first")
        self._containers[attempt_id] = container
        if attempt_id in self._unswept:  # nothing left over runs beside the new command
            await self.kill_strays(attempt_id)
            container = await self._find(attempt_id)
            if container is None:
                raise RunnerError(f"the container of attempt {attempt_id} no longer exists")
        # a login made since the container started reaches it (the home of the account of the attempt)
        await self._copy_agent_home(container.id, await self._in_thread(self.home_of, attempt_id))
        exec_env = {**await self._in_thread(self.secrets.env, attempt_id), **env}
        line = command_line(argv, cwd, exec_env) if self.settings.prestart_exec else None
        if line is not None:
            while (pre := await self._take_prestarted(attempt_id, container.id)) is not None:
                proc = DockerProcess(self, pre.exec_id, container.id, pre.reader, pre.writer, attempt_id)
                if await proc._start_prestarted(pre, argv[0], cwd, line, stdin, interactive):
                    self._refill_after(attempt_id, proc)
                    return proc
                log.info("the pre-started exec of attempt %s was gone; starting another", attempt_id)
        exec_id = await self._exec_create(
            attempt_id,
            container.id,
            [*self.exec_prefix, "/bin/sh", "-c", LAUNCHER, "anyon-exec", *argv],
            argv[0],
            stdin=stdin is not None or interactive,
            environment=exec_env,
            workdir=cwd,
        )
        reader, writer = await self._start_exec(exec_id)
        proc = DockerProcess(self, exec_id, container.id, reader, writer, attempt_id)
        await proc._start(argv[0], stdin, interactive)
        self._refill_after(attempt_id, proc)
        return proc

    # --- pre-started execs (warm.py) ----------------------------------------------------------

    def prestart(self, attempt_id: str) -> None:
        """Start a waiting launcher in the attempt's container in the background, unless one exists."""
        if not self.settings.prestart_exec:
            return
        pre = self._prestarted.get(attempt_id)
        if pre is not None and pre.alive:
            return
        task = self._prestarting.get(attempt_id)
        if task is not None and not task.done():
            return
        task = asyncio.get_running_loop().create_task(
            self._prestart(attempt_id), name=f"anyon-prestart:{attempt_id}"
        )
        self._prestarting[attempt_id] = task
        task.add_done_callback(functools.partial(self._prestart_done, attempt_id))

    def _prestart_done(self, attempt_id: str, task: asyncio.Task[PrestartedExec | None]) -> None:
        if self._prestarting.get(attempt_id) is task:
            del self._prestarting[attempt_id]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.info("could not pre-start an exec for attempt %s: %s", attempt_id, exc)

    async def _prestart(self, attempt_id: str) -> PrestartedExec | None:
        container = self._containers.get(attempt_id)
        if container is None:
            return None
        created = await self._call(
            lambda: self.api.exec_create(
                container.id,
                [*self.exec_prefix, "/bin/sh", "-c", PRESTART_LAUNCHER, PRESTART_NAME],
                stdin=True,
            )
        )
        exec_id = str(created["Id"])
        reader, writer = await self._start_exec(exec_id)
        pre = PrestartedExec(exec_id, container.id, 0, reader, writer)
        try:
            line, early_stderr = b"", b""
            while not line.endswith(b"\n"):
                frame = await asyncio.wait_for(read_frame(reader), 30)
                if frame is None:
                    raise RunnerError("the pre-started exec ended at once")
                if frame[0] == STDERR:
                    early_stderr += frame[1]
                else:
                    line += frame[1]
            if not line.strip().isdigit():
                raise RunnerError(f"unexpected first line from the pre-started exec: {line[:80]!r}")
            pre.pid, pre.early_stderr = int(line), early_stderr
        except BaseException:
            pre.close()
            raise
        if self._containers.get(attempt_id) is not container:  # removed or replaced meanwhile
            pre.close()
            return None
        old = self._prestarted.pop(attempt_id, None)
        if old is not None:
            old.close()
        self._prestarted[attempt_id] = pre
        return pre

    async def _take_prestarted(self, attempt_id: str, container_id: str) -> PrestartedExec | None:
        """The attempt's waiting launcher, or the one being started (sooner than a fresh exec)."""
        pre = self._prestarted.pop(attempt_id, None)
        if pre is None:
            task = self._prestarting.get(attempt_id)
            if task is None:
                return None
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
            pre = self._prestarted.pop(attempt_id, None)
        if pre is None:
            return None
        if pre.container_id != container_id or not pre.alive:
            pre.close()
            return None
        return pre

    def _refill_after(self, attempt_id: str, proc: DockerProcess) -> None:
        """Start the next waiting launcher once the process printed (nothing at start may delay it)."""
        if not self.settings.prestart_exec:
            return

        async def refill() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.output_seen.wait(), 0.5)
            if attempt_id in self._containers:
                self.prestart(attempt_id)

        task = asyncio.get_running_loop().create_task(refill(), name=f"anyon-refill:{attempt_id}")
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _drop_prestarted(self, attempt_id: str) -> None:
        task = self._prestarting.pop(attempt_id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        pre = self._prestarted.pop(attempt_id, None)
        if pre is not None:
            pre.close()

    async def _run_quiet(self, container_id: str, argv: list[str], timeout: float) -> bytes:
        """Run a short helper command in the container and return its output (stdout and stderr)."""
        import docker

        try:
            created = await self._call(lambda: self.api.exec_create(container_id, argv))
        except docker.errors.APIError as exc:
            raise RunnerError(str(exc.explanation)) from exc
        reader, writer = await self._start_exec(str(created["Id"]))

        async def drain() -> bytes:
            out = b""
            while (frame := await read_frame(reader)) is not None:
                if len(out) < _HANDSHAKE_LIMIT:  # helpers print a few lines; never keep more
                    out += frame[1][: _HANDSHAKE_LIMIT - len(out)]
            return out

        try:
            return await asyncio.wait_for(drain(), timeout)
        except TimeoutError as exc:
            raise RunnerError(f"helper command timed out after {timeout:.0f}s") from exc
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def _exec_create(
        self, attempt_id: str, container_id: str, argv: list[str], name: str, **kwargs: Any
    ) -> str:
        """Create an exec in the attempt's container; a vanished container or an API refusal is clear."""
        import docker

        try:
            created = await self._call(lambda: self.api.exec_create(container_id, argv, **kwargs))
        except docker.errors.NotFound as exc:
            self._containers.pop(attempt_id, None)
            raise RunnerError(f"the container of attempt {attempt_id} no longer exists") from exc
        except docker.errors.APIError as exc:
            raise RunnerError(f"could not start {name!r} in attempt {attempt_id}: {exc.explanation}") from exc
        return str(created["Id"])

    async def run_captured(
        self,
        attempt_id: str,
        argv: list[str],
        cwd: str,
        env: dict[str, str] | None = None,
        *,
        timeout: float = 300.0,
        limit: int = 64 * 1024 * 1024,
    ) -> tuple[int, bytes, bytes]:
        """Run a command in the attempt's container to completion: (exit code, stdout, stderr).

        For the server's own git work on the attempt's repository, which runs where the agent runs
        (THREAT-MODEL rule 2). Output beyond ``limit`` bytes fails the call rather than filling memory.
        """

        container = await self._find(check_attempt_id(attempt_id))
        if container is None:
            raise RunnerError(f"attempt {attempt_id} has no container; it must be provisioned first")
        exec_id = await self._exec_create(
            attempt_id, container.id, [*self.exec_prefix, *argv], argv[0], environment=env or {}, workdir=cwd
        )
        reader, writer = await self._start_exec(exec_id)
        out, err = bytearray(), bytearray()

        async def drain() -> None:
            while (frame := await read_frame(reader)) is not None:
                target = err if frame[0] == STDERR else out
                target += frame[1]
                if len(out) + len(err) > limit:
                    raise RunnerError(f"{argv[0]!r} in attempt {attempt_id} printed more than {limit} bytes")

        try:
            await asyncio.wait_for(drain(), timeout)
        except TimeoutError as exc:
            raise RunnerError(f"{argv[0]!r} in attempt {attempt_id} timed out after {timeout:.0f}s") from exc
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
        info = await self._call(self.api.exec_inspect, exec_id)
        code = info.get("ExitCode")
        return (code if isinstance(code, int) else -1), bytes(out), bytes(err)

    async def _kill_container(self, container_id: str) -> None:
        with contextlib.suppress(Exception):
            await self._call(lambda: self.api.kill(container_id))

    async def _cgroup_counts(self, container_id: str) -> _CgroupCounts | None:
        """The container cgroup's OOM-kill and refused-fork counters; ``None`` when unreadable.

        Unreadable includes a container whose pids limit is still exhausted: the probe itself cannot
        start then (the engine names that case from the process's stderr instead).
        """
        try:
            out = await self._run_quiet(container_id, ["/bin/sh", "-c", _CGROUP_PROBE], timeout=10)
        except RunnerError:
            return None
        memory, _, pids = out.decode(errors="replace").partition("--pids")
        return _CgroupCounts(_counter(memory, "oom_kill"), _counter(pids, "max"))

    async def _cgroup_faults(self, container_id: str) -> tuple[bool, bool]:
        """(an OOM kill, a refused fork) in this container since we last looked.

        Counters are per container: when two processes of one attempt end together, the first to look
        is told of both (the message then reaches the attempt, if not always the exact process).
        """
        container = next((c for c in self._containers.values() if c.id == container_id), None)
        counts = await self._cgroup_counts(container_id)
        if counts is None:
            return False, False
        seen = _CgroupCounts(container.oom_kills, container.pids_max) if container else _CgroupCounts(0, 0)
        if container is not None:
            container.oom_kills, container.pids_max = counts
        return counts.oom_kills > seen.oom_kills, counts.pids_max > seen.pids_max

    async def _oom_flagged(self, container_id: str) -> bool:
        """The container's own OOMKilled flag (its init was killed), when the counters say nothing."""
        try:
            state = await self._call(lambda: self.api.inspect_container(container_id))
        except Exception:  # a vanished container was not OOM-killed as far as anyone can tell
            return False
        return bool(state.get("State", {}).get("OOMKilled"))


def _counter(text: str, key: str) -> int:
    """The value of ``key N`` in a cgroup events file's text, 0 when absent."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0
