"""Keeping a container's copy of the agent home current: a login made after the container was created.

A cloud container's HOME starts as a copy of the deployment's agent home (mounted read-only), so its agents
are signed in. The copy is the agent's own: it may change it, never the shared login. A login made in the
browser *after* the container was created lands in the agent home only; so before each process starts, the
runner compares a cheap stamp of the agent home (names, sizes and mtimes of its entries, no file contents)
with the stamp of the container's last copy, and copies again only when they differ. The stamp of the last
copy is kept in the container's HOME too, so a server restart does not copy again for nothing.

A copy adds and overwrites files; it removes none (a logout does not reach a running container's copy).
:class:`AgentHomeSync` does this for a runner: which agent home an attempt's container gets (its account's,
else the deployment's), handing it to the container user, and copying it into a container when it changed.
"""

from __future__ import annotations

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
#: ``sh -c SCRIPT <agent home> <stamp>``: copy the agent home into HOME unless this stamp was copied already.
REFRESH_SCRIPT = (
    f's="$HOME/{STAMP_FILE}"; [ "$(cat "$s" 2>/dev/null)" = "$1" ] && exit 0; '
    'cp -R "$0"/. "$HOME"/ 2>/dev/null; printf "%s\\n" "$1" > "$s" 2>/dev/null; exit 0'
)


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
        #: container id → stamp of the agent home last copied into its HOME
        self._home_copies: dict[str, str] = {}

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
        home changed since (a login in the browser after the container was created).
        """
        if not home:
            return
        stamp = await self._engine.in_thread(home_stamp, home)
        if stamp is None or self._home_copies.get(container_id) == stamp:
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
        self._home_copies[container_id] = stamp
