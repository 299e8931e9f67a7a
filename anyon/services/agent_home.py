"""The per-deployment agent home: where agents keep their logins (``agents.home``).

Logins made from the browser (auth/claude routes) land here; in local mode agents run with it as HOME, in
cloud mode each attempt's container gets a read-only view of it and works on its own copy (runners/docker.py),
so an agent can neither change the shared credentials nor see another attempt's. It is created 0700 and
never read into the database or the logs.
"""

from __future__ import annotations

import os
from pathlib import Path


def ensure_agent_home(path: str) -> Path:
    """Create the agent home (0700) if needed and tighten its mode; returns it."""
    home = Path(path)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    return home
