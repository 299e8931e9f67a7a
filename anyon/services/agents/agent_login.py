"""Signing an agent in from the browser: the CLI's login runs in a pseudo-terminal the UI drives (spec §2.7).

A board user cannot answer "Invalid API key · Please run /login" from a web page, so the server runs the
CLI's interactive login itself, in a PTY whose HOME is the agent home (agent_home.py): output goes to the
browser, keystrokes come back, and the credentials the CLI writes land where the agents will find them.
In cloud mode with accounts that is the acting account's own home; a session belongs to the account
that opened it (another account's session id answers as an unknown one).
Every 2 s the session checks whether credentials have appeared; then it is done.

A logout removes the login from the agent home and then, in cloud mode, has it removed at once from the
HOME of every running container that copied that home (``on_logout``, given by the composition root: this
package does not reach the runners), so no agent of that account keeps using it.

What the user types (a pasted code, a key) is never kept: the session log records output, and input only
as its length. Sessions end when the browser leaves, on cancel, on success, or after
``agents.login_timeout_seconds``.

Each terminal is a process, so the server holds at most ``MAX_OPEN_SESSIONS`` open at once. In cloud mode
each account (the API token counts as one) may also hold only ``agents.login_terminals_per_account`` of
them, fewer than that cap: otherwise one account could open them all and keep every colleague from signing
in. A refused open starts no process. An open counts from its check on, while its process is still being
started, so opens racing each other cannot slip past either limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import struct
import termios
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyon.services.agents.agent_home import AgentHomes
from anyon.services.errors import NotFound, ServiceError
from anyon.services.normalizer import utc_now

log = logging.getLogger(__name__)

#: Where the Claude Code CLI keeps its login (under HOME); ``.claude.json`` keeps the account it belongs to.
CLAUDE_CREDENTIALS = (".claude/.credentials.json",)
CLAUDE_ACCOUNT_FILE = ".claude.json"
CHECK_SECONDS = 2.0
#: Sessions whose log stays readable after they end.
KEPT_SESSIONS = 16
#: Login terminals open at once (each is a process): more are refused rather than piling up. The bound of
#: ``agents.login_terminals_per_account`` (config/fields.py) stays below it.
MAX_OPEN_SESSIONS = 4
#: How long a logout waits for the running containers to drop the login (the next process start would).
LOGOUT_REACH_SECONDS = 20.0
_LOG_ENTRIES = 2000
_READ_BYTES = 16 * 1024


@dataclass
class LoginSession:
    """One login terminal: its process, the PTY's master end, and what it printed."""

    id: str
    proc: asyncio.subprocess.Process
    master: int
    started: float
    #: the agent home it signs in, and the account it belongs to (None: the shared home's owner)
    home: Path
    owner: str | None = None
    entries: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=_LOG_ENTRIES))
    output: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    ended: bool = False
    #: what was typed, only to mask the terminal's echo of it in the log (never stored itself)
    typed: list[str] = field(default_factory=list)

    def note(self, direction: str, data: str) -> None:
        for secret in self.typed:
            data = data.replace(secret, "***")
        self.entries.append({"timestamp": utc_now(), "direction": direction, "data": data})


class AgentLoginService:
    """Starts, relays, checks and ends login terminals; logs out by removing the stored credentials."""

    def __init__(
        self,
        home: str,
        command: list[str],
        env: Mapping[str, str],
        *,
        timeout_seconds: float = 900.0,
        per_account_limit: int = 2,
        check_seconds: float = CHECK_SECONDS,
        resolve: Callable[[list[str]], list[str]] | None = None,
        own_home: bool = True,
        homes: AgentHomes | None = None,
        on_logout: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        # ``homes``: cloud mode, where each account signs in its own home; else the one ``home``
        self._homes = homes or AgentHomes(home, per_account=False)
        # cloud mode: copies the agent home again into the running containers that have it (a logout)
        self._on_logout = on_logout
        # a configured agent home is ours to create and keep 0700; the user's own HOME is left as it is
        self._own_home = own_home
        self._command = list(command)
        self._env = dict(env)
        self._timeout = timeout_seconds
        # only where accounts sign in their own homes (cloud mode): a local server has one user
        self._per_account_limit = per_account_limit if self._homes.per_account else None
        self.check_seconds = check_seconds
        self._resolve = resolve
        self._sessions: dict[str, LoginSession] = {}
        # the owners of opens past their limit checks whose process is still being started
        self._starting: list[str | None] = []

    @property
    def home(self) -> Path:
        """The acting account's agent home."""
        return Path(self._homes.current())

    def _owner(self) -> str | None:
        return self._homes.owner() if self._homes.per_account else None

    # --- credentials ---------------------------------------------------------------------------------

    def credentials_present(self, session: LoginSession | None = None) -> bool:
        """Is there a login in ``session``'s home (by default: the acting account's)?"""
        home = session.home if session is not None else self.home
        return any(_non_empty(home / name) for name in CLAUDE_CREDENTIALS)

    async def logout(self) -> None:
        """Remove the acting account's stored login (works offline: only files in its agent home change),
        then from the running containers that copied that home."""
        home = self.home
        await asyncio.to_thread(_remove_login, home)
        if self._on_logout is None:
            return
        try:
            await asyncio.wait_for(self._on_logout(str(home)), LOGOUT_REACH_SECONDS)
        except TimeoutError:
            log.warning("the logout has not reached every running container yet; their next process will")

    # --- sessions ------------------------------------------------------------------------------------

    async def start(self, rows: int = 40, cols: int = 120) -> LoginSession:
        owner = self._owner()
        self._check_limits(owner)
        self._starting.append(owner)  # counted from here on: no await ran between the check and this
        try:
            return await self._spawn(owner, rows, cols)
        finally:
            self._starting.remove(owner)

    def _check_limits(self, owner: str | None) -> None:
        """Refuse an open past the acting account's own limit (first: that one it can free itself) or past
        the server-wide cap."""
        owners = [s.owner for s in self._sessions.values() if not s.ended] + self._starting
        limit = self._per_account_limit
        if limit is not None and owners.count(owner) >= limit:
            minutes = max(1, round(self._timeout / 60))
            raise ServiceError(
                f"this account already has {limit} login terminals open, its own limit: close one of them"
                f" or wait for its timeout ({minutes} min)"
            )
        if len(owners) >= MAX_OPEN_SESSIONS:
            raise ServiceError(
                f"{MAX_OPEN_SESSIONS} login terminals are already open; close one or wait for its timeout"
            )

    async def _spawn(self, owner: str | None, rows: int, cols: int) -> LoginSession:
        home = Path(self._homes.ensure(owner) if self._own_home else self._homes.of(owner))
        argv = self._resolve(self._command) if self._resolve is not None else self._command
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**self._env, "HOME": str(home), "TERM": "xterm-256color"}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=str(home),
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(master)
            raise ServiceError(f"could not start the login command {argv[0]!r}: {exc}") from None
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        session = LoginSession(str(uuid.uuid4()), proc, master, time.monotonic(), home=home, owner=owner)
        self._sessions[session.id] = session
        self._forget_old()
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._readable, session)
        # ends a session nobody watches (the legacy routes have no socket whose closing ends it)
        loop.call_later(self._timeout, lambda: asyncio.ensure_future(self.end(session.id)))
        log.info("login session %s started (%s)", session.id, argv[0])
        return session

    def _readable(self, session: LoginSession) -> None:
        try:
            data = os.read(session.master, _READ_BYTES)
        except BlockingIOError:
            return
        except OSError:  # EIO: the process closed its terminal
            data = b""
        if not data:
            self._close_pty(session)
            return
        session.note("output", data.decode("utf-8", "replace"))
        session.output.put_nowait(data)

    async def write(self, session_id: str, data: bytes) -> None:
        session = self.get(session_id)
        if session.ended:
            raise ServiceError("this login session has ended")
        session.note("input", f"[{len(data)} bytes]")  # what was typed may be a secret: never kept
        words = [w for w in data.decode("utf-8", "replace").split() if len(w) >= 4]
        session.typed = sorted({*session.typed, *words}, key=len, reverse=True)[:32]
        view = memoryview(data)
        while view and not session.ended:
            try:
                written = os.write(session.master, view)
            except BlockingIOError:  # the terminal's input buffer is full: let the CLI read first
                await asyncio.sleep(0.01)
                continue
            except OSError as exc:
                raise ServiceError(f"the login terminal is closed: {exc.strerror}") from None
            view = view[written:]

    def get(self, session_id: str) -> LoginSession:
        """The session, if the acting account opened it (another's answers exactly as an unknown id)."""
        session = self._sessions.get(session_id)
        if session is None or session.owner != self._owner():
            raise NotFound("login session not found")
        return session

    def session_log(self, session_id: str) -> dict[str, Any]:
        session = self.get(session_id)
        return {"session_id": session.id, "entries": list(session.entries)}

    def expired(self, session: LoginSession) -> bool:
        return time.monotonic() - session.started > self._timeout

    async def end(self, session_id: str) -> None:
        """Stop the login process (its whole process group) and close the terminal."""
        session = self._sessions.get(session_id)
        if session is None:
            return
        if session.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(session.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(session.proc.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(session.proc.pid, signal.SIGKILL)
                await session.proc.wait()
        self._close_pty(session)

    async def end_all(self) -> None:
        for session_id in list(self._sessions):
            await self.end(session_id)

    def _close_pty(self, session: LoginSession) -> None:
        if session.ended:
            return
        session.ended = True
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(session.master)
        with contextlib.suppress(OSError):
            os.close(session.master)
        session.output.put_nowait(None)

    def _forget_old(self) -> None:
        ended = [s for s in self._sessions.values() if s.ended]
        for session in ended[: max(0, len(ended) - KEPT_SESSIONS)]:
            self._sessions.pop(session.id, None)


def _remove_login(home: Path) -> None:
    """Remove the Claude login from ``home``: its credentials, and the account named in its settings."""
    for name in CLAUDE_CREDENTIALS:
        (home / name).unlink(missing_ok=True)
    account = home / CLAUDE_ACCOUNT_FILE
    try:
        data = json.loads(account.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and {"oauthAccount", "primaryApiKey"} & set(data):
        data.pop("oauthAccount", None)
        data.pop("primaryApiKey", None)
        tmp = account.with_name(f".{account.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, account)


def _non_empty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False
