"""Bring the remote-tracking refs a branch status reports on up to date, without slowing it down.

``GET …/branch-status`` is polled every few seconds by every open attempt view, so a fetch per request
would make it slow and hammer GitHub. Here a fetch happens at most once per ``interval`` per repository
and remote (sooner only when a request wants a branch the last fetch did not bring), runs in a thread,
and is waited for at most ``timeout`` seconds; requests that arrive while it runs share it. When it
fails, times out or the remote is not one the token may go to, the status is simply computed from the
refs that are there, and one warning is logged (without the token).

The remote is the repository's configured one checked by the same :class:`RemotePolicy` as a push, and
the fetch goes through the same transport (the token only in the credentials callback). It always runs
in the server against the project repository on the host: in cloud mode an attempt's container gets no
token, no process and no ref from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pygit2

from anyon.services.errors import ServiceError
from anyon.services.git.errors import GitServiceError
from anyon.services.git.remote_tips import FETCHED_PREFIX
from anyon.services.git.repo import open_repo
from anyon.services.github.remotes import RemotePolicy, RemoteRepo
from anyon.services.github.transport import fetch_refs

log = logging.getLogger(__name__)

#: seconds between two fetches of one repository from one remote
FETCH_INTERVAL = 60.0
#: seconds a branch status waits for a fetch before it answers from the refs it has
FETCH_TIMEOUT = 5.0
#: seconds a branch someone asked about stays in the fetches of its repository
WANTED_FOR = 600.0


def _clock() -> float:
    return time.monotonic()


@dataclass
class _Fetches:
    """One repository and remote: what to fetch, when it was last fetched, the fetch running now."""

    wanted: dict[str, float] = field(default_factory=dict)
    fetched: frozenset[str] = frozenset()
    last: float | None = None
    running: asyncio.Task[None] | None = None
    started: float = 0.0
    warned: bool = False


class RemoteRefresh:
    def __init__(
        self,
        remotes: RemotePolicy,
        token: Callable[[], str | None],
        interval: float = FETCH_INTERVAL,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self._remotes = remotes
        self._token = token
        self._interval = interval
        self._timeout = timeout
        self._fetches: dict[tuple[str, str], _Fetches] = {}

    def _remote_of(self, repo_path: str, name: str) -> tuple[RemoteRepo, str | None] | None:
        try:
            url = open_repo(repo_path).remotes[name].url
        except (KeyError, ValueError, pygit2.GitError, ServiceError, GitServiceError):
            return None
        if not url:
            return None
        try:
            remote = self._remotes.check(url)
        except ServiceError:
            log.debug("%s: remote %s is not one the token may go to; not fetched", repo_path, name)
            return None
        return remote, (None if remote.local else self._token())

    async def refresh(self, repo_path: str, remote_name: str, refs: Sequence[tuple[str, str]]) -> None:
        """Fetch ``refs`` — (branch on the remote, local ref it goes to) — from ``remote_name`` if due.

        Never raises: what could not be fetched is left as it was.
        """
        specs = {s for s in (_refspec(remote_name, b, ref) for b, ref in refs) if s is not None}
        if not specs:
            return
        found = await asyncio.to_thread(self._remote_of, repo_path, remote_name)
        if found is None:
            return
        remote, token = found
        fetches = self._fetches.setdefault((repo_path, remote.url), _Fetches())
        now = _clock()
        for spec in specs:
            fetches.wanted[spec] = now
        fetches.wanted = {s: t for s, t in fetches.wanted.items() if now - t < WANTED_FOR}
        running = fetches.running
        due = fetches.last is None or now - fetches.last >= self._interval
        if running is None and (due or not set(fetches.wanted) <= fetches.fetched):
            fetches.last = fetches.started = now
            fetches.fetched = frozenset(fetches.wanted)
            fetches.warned = False
            running = fetches.running = asyncio.create_task(
                self._fetch(fetches, repo_path, remote, token, sorted(fetches.fetched))
            )
        if running is None:
            return
        left = fetches.started + self._timeout - now
        if left > 0:
            await asyncio.wait({running}, timeout=left)
        if not running.done() and not fetches.warned:
            fetches.warned = True
            log.warning(
                "fetch from %s/%s for %s did not finish within %.0f s; branch status uses the local refs",
                remote.owner,
                remote.name,
                repo_path,
                self._timeout,
            )

    async def _fetch(
        self, fetches: _Fetches, repo_path: str, remote: RemoteRepo, token: str | None, specs: list[str]
    ) -> None:
        try:
            await _in_own_thread(lambda: fetch_refs(repo_path, remote, token, specs, self._timeout))
        except Exception as exc:  # anything: the status falls back to local refs either way
            text = str(exc) or type(exc).__name__
            if token:
                text = text.replace(token, "***")
            if not fetches.warned:
                fetches.warned = True
                log.warning("branch status uses the local refs of %s: %s", repo_path, text)
        finally:
            fetches.running = None


async def _in_own_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a daemon thread of its own, not the loop's executor: a connection that hangs
    (libgit2 has no overall deadline) then neither holds an executor worker nor delays the server's stop.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as exc:  # handed to the awaiting task, which decides
            error = exc
        with contextlib.suppress(RuntimeError):  # the server stopped meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="anyon-fetch", daemon=True).start()
    await done


def _refspec(remote: str, branch: str, ref: str) -> str | None:
    """``+refs/heads/<branch>:<ref>``, for a destination under this remote's tracking or fetched refs only."""
    source = f"refs/heads/{branch}"
    allowed = (f"refs/remotes/{remote}/", f"{FETCHED_PREFIX}{remote}/")
    if not ref.startswith(allowed) or "*" in source + ref:
        return None
    if not (pygit2.reference_is_valid_name(source) and pygit2.reference_is_valid_name(ref)):
        return None
    return f"+{source}:{ref}"
