"""Where agents keep their logins: the deployment's agent home (``agents.home``) and, in cloud mode with
accounts, one home per account.

Logins made from the browser (auth/claude routes) land here; in local mode agents run with it as HOME, in
cloud mode each attempt's container gets a read-only view of it and works on its own copy (runners/docker.py),
so an agent can neither change the stored credentials nor see another attempt's; a login removed here is
removed from the running containers' copies too (runners/agent_home_sync.py). Homes are created 0700 and
never read into the database or the logs.

With accounts, an account's home is ``<agents.home>.users/<user id>``: a *sibling* of the shared home, not a
folder inside it, because the shared home is mounted whole into the containers of the server's API token
(the legacy admin identity) and must not carry every account's credentials with it. The acting account's
home serves the login terminal, the logout and the MCP config; an attempt's container gets the home of the
account that started the attempt (``task_attempts.user_id``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from anyon.services.db.columns import parse_uuid
from anyon.services.team.access import owner_id


def ensure_agent_home(path: str) -> Path:
    """Create the agent home (0700) if needed and tighten its mode; returns it."""
    home = Path(path)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    return home


class AgentHomes:
    """The shared agent home and, when ``per_account``, each account's own (see the module docstring).

    ``who`` names the acting account (the request's principal); None is the shared home's owner: local
    mode, the server's API token, and background work no account started.
    """

    def __init__(self, shared: str, *, per_account: bool, who: Callable[[], str | None] = owner_id) -> None:
        self.shared = shared
        self.per_account = per_account
        self._who = who
        self.users_root = shared.rstrip(os.sep) + ".users"

    def of(self, user_id: str | None) -> str:
        """The home of ``user_id`` (the shared one for None or without accounts)."""
        if not self.per_account or not user_id:
            return self.shared
        parsed = parse_uuid(user_id)
        if parsed is None:  # ids are UUIDs we minted; anything else never becomes a path
            raise ValueError(f"not an account id: {user_id[:64]!r}")
        return os.path.join(self.users_root, str(parsed))

    def owner(self) -> str | None:
        """The acting account (None: the shared home's owner)."""
        return self._who() if self.per_account else None

    def current(self) -> str:
        """The acting account's home."""
        return self.of(self.owner())

    def ensure(self, user_id: str | None) -> str:
        """``of(user_id)``, created 0700 (the per-account root too)."""
        home = self.of(user_id)
        if home != self.shared:
            ensure_agent_home(self.users_root)
        ensure_agent_home(home)
        return home
