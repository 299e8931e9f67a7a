"""Cloud mode: agents run in hardened per-attempt Docker containers; data under /var/opt/anyon.

Docker is imported lazily by the runner, so this module loads on a machine without Docker and a
cloud failure never breaks the local code path.
"""

from __future__ import annotations

from anyon.deployment.base import BaseDeployment


class CloudDeployment(BaseDeployment):
    mode = "cloud"
