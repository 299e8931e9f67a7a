"""Keeping a container's copy of the agent home current: a login made, or removed, after it was created.

A cloud container's HOME starts as a copy of the deployment's agent home (mounted read-only), so its agents
are signed in. The copy is the agent's own: it may change it, never the shared login. A login made in the
browser *after* the container was created lands in the agent home only; so before each process starts, the
runner compares a cheap stamp of the agent home (names, sizes and mtimes of its entries, no file contents)
with the stamp of the container's last copy, and copies again only when they differ. The stamp of the last
copy is kept in the container's HOME too, so a server restart does not copy again for nothing.

A copy mirrors removals too, so a logout reaches the container: beside the stamp, HOME keeps a manifest of
the files the last copy brought, one relative path a line. The next copy first removes from HOME each
listed path the agent home no longer has, then copies. What the agent made itself is in no manifest and
stays. A name with a newline is never listed (it would read as two paths): such a file is copied but not
removed again; the agents' login files have no such names. A logout does not wait for the next process:
:meth:`AgentHomeSync.refresh` copies at once into every running container of this server run that has
that home (a container adopted from an earlier run starts no process before its next copy).

All of it runs inside the container, as the container user, in the agent's own HOME: the agent may have
planted a link there (THREAT-MODEL rule 3). The script removes an entry itself (``rm -f``, never through a
link), refuses a listed path with an empty, ``.`` or ``..`` part or with a link among the directories on
its way, and replaces links on the copy's paths before copying; it writes the manifest and the stamp
through a fresh temporary file renamed over them, so a link planted in their place is replaced, not
followed. (The agent runs as the same user in the same container, so a race against the script gains it
nothing it could not do itself.)

:class:`AgentHomeSync` does this for a runner: which agent home an attempt's container gets (its account's,
else the deployment's), handing it to the container user, and copying it into a container when it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable

from anyon.services.runners.base import RunnerError
from anyon.services.runners.container_spec import CONTAINER_AGENT_HOME
from anyon.services.runners.engine_client import EngineClient

log = logging.getLogger(__name__)

#: Entries of the agent home the stamp looks at, at most (a bigger home: changes past them go unseen).
MAX_STAMPED_ENTRIES = 20_000
#: Where the container keeps the stamp of its last copy (inside its own HOME).
STAMP_FILE = ".anyon-agent-home-stamp"
#: Where the container keeps the list of the files its last copy brought (inside its own HOME).
MANIFEST_FILE = ".anyon-agent-home-manifest"
#: ``sh -c SCRIPT <agent home> <stamp>``: unless this stamp was copied already, remove from HOME what the
#: last copy brought and the agent home no longer has, copy the agent home into HOME, keep the new
#: manifest and the stamp (see the module docstring for why each step is written as it is).
REFRESH_SCRIPT = f"""
s="$HOME/{STAMP_FILE}"; m="$HOME/{MANIFEST_FILE}"
[ "$(cat "$s" 2>/dev/null)" = "$1" ] && exit 0
cd "$0" 2>/dev/null || exit 0
nl='
'
ok() {{
  r=$1; d=$HOME
  while :; do
    c=${{r%%/*}}
    case $c in ''|.|..) return 1 ;; esac
    [ "$c" = "$r" ] && return 0
    d=$d/$c; r=${{r#*/}}
    [ -d "$d" ] && [ ! -L "$d" ] || return 1
  done
}}
l=$(mktemp "$HOME/.anyon-agent-home.XXXXXX") || exit 0
n=$(mktemp "$HOME/.anyon-agent-home.XXXXXX") || {{ rm -f "$l"; exit 0; }}
trap 'rm -f "$l" "$n"' EXIT
if [ -f "$m" ] && [ ! -L "$m" ]; then
  while IFS= read -r p; do
    {{ [ -e "$p" ] || [ -L "$p" ]; }} && continue
    ok "$p" && rm -f "$HOME/$p" 2>/dev/null
  done < "$m"
fi
find . -path "*$nl*" -prune -o -print > "$l" 2>/dev/null
while IFS= read -r p; do
  p=${{p#./}}
  [ "$p" = . ] && continue
  ok "$p" && [ -L "$HOME/$p" ] && rm -f "$HOME/$p" 2>/dev/null
  [ -d "$p" ] && [ ! -L "$p" ] || printf '%s\\n' "$p"
done < "$l" > "$n"
cp -R ./. "$HOME"/ 2>/dev/null
rm -f "$m" 2>/dev/null; mv -f "$n" "$m" 2>/dev/null
printf '%s\\n' "$1" > "$l" && rm -f "$s" 2>/dev/null && mv -f "$l" "$s" 2>/dev/null
exit 0
"""


def home_stamp(path: str) -> str | None:
    """A fingerprint of the tree at ``path`` that changes when a login adds or rewrites a file in it.

    ``None`` when there is no such directory. Links are not followed (the mount shows them as they are).
    """
    if not os.path.isdir(path):
        return None
    digest = hashlib.sha256()
    seen = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in [".", *sorted(files), *dirs]:
            full = os.path.join(root, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            rel = os.path.relpath(full, path)
            digest.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="replace"))
            seen += 1
            if seen >= MAX_STAMPED_ENTRIES:
                return digest.hexdigest()[:32]
    return digest.hexdigest()[:32]


class AgentHomeSync:
    """The agent home of each attempt's container, and the stamp of the copy each container holds."""

    def __init__(
        self,
        engine: EngineClient,
        uid: int,
        gid: int,
        agent_home: str | None = None,
        agent_home_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self._engine = engine
        self.uid, self.gid = uid, gid
        self.agent_home = agent_home
        # cloud mode with accounts: the home of the account that started the attempt (agents/agent_home.py)
        self._agent_home_of = agent_home_of
        #: container id → (the agent home copied into its HOME, resolved; the stamp of that copy)
        self._home_copies: dict[str, tuple[str, str]] = {}
        #: one copy at a time per container (a process start and a logout may both copy)
        self._locks: dict[str, asyncio.Lock] = {}

    def home_of(self, attempt_id: str) -> str | None:
        """The agent home an attempt's container gets: its account's, else the deployment's (blocking)."""
        if self._agent_home_of is not None:
            return self._agent_home_of(attempt_id)
        return self.agent_home

    def share(self, home: str | None) -> None:
        """A root server gives the agent home to the container user, who must read it (like secrets_dir)."""
        if not home or os.geteuid() != 0 or (self.uid, self.gid) == (0, 0):
            return
        for root, dirs, files in os.walk(home):
            for name in [".", *dirs, *files]:
                with contextlib.suppress(OSError):
                    os.lchown(os.path.join(root, name), self.uid, self.gid)

    async def copy(self, container_id: str, home: str | None) -> None:
        """The container's HOME is a copy of the agent home (``home``: its account's), so its agents are
        signed in: made when the container starts, and made again before a process starts when the agent
        home changed since (a login in the browser after the container was created, or a logout).
        """
        if not home:
            return
        async with self._locks.setdefault(container_id, asyncio.Lock()):
            real, stamp = await self._engine.in_thread(_look_at, home)
            copied = self._home_copies.get(container_id)
            if stamp is None or copied == (real, stamp):
                return
            await self._engine.in_thread(self.share, home)
            argv = ["/bin/sh", "-c", REFRESH_SCRIPT, CONTAINER_AGENT_HOME, stamp]
            try:
                await self._engine.run_quiet(container_id, argv, 30)
            except RunnerError as exc:
                log.warning("copying the agent home into container %s failed: %s", container_id[:12], exc)
                return
            if len(self._home_copies) >= 4096:  # ids of removed containers: forget them all, a copy is cheap
                self._home_copies.clear()
                self._locks = {cid: lock for cid, lock in self._locks.items() if lock.locked()}
            self._home_copies[container_id] = (real, stamp)

    async def refresh(self, home: str) -> list[str]:
        """Copy ``home`` again, now, into every running container this server run copied it into (a logout
        must not wait for the container's next process); returns their ids.

        A container of an earlier server run that this run has not copied into yet runs no process of
        its agents until its next one starts, and that start copies first. Never raises: a Docker
        Engine that does not answer leaves the copies to the next process start.
        """
        import docker

        real = await self._engine.in_thread(os.path.realpath, home)
        ids = [cid for cid, (copied, _stamp) in self._home_copies.items() if copied == real]
        if not ids:
            return []
        try:
            listed = await self._engine.call(
                lambda: self._engine.api.containers(filters={"id": ids, "status": "running"})
            )
        except (RunnerError, docker.errors.APIError) as exc:  # the next process start copies
            log.warning("could not list the containers that hold the agent home %s: %s", home, exc)
            return []
        running = [cid for cid in ids if any(c.get("Id") == cid for c in listed)]
        for cid in set(ids) - set(running):  # stopped or removed: a restart gets a fresh HOME, copied anew
            self._home_copies.pop(cid, None)
        await asyncio.gather(*(self.copy(cid, home) for cid in running))
        return running


def _look_at(home: str) -> tuple[str, str | None]:
    """``home`` resolved (containers are matched by it) and its stamp."""
    return os.path.realpath(home), home_stamp(home)
