"""Local mode: agents run as host processes; data lives in the user's home (XDG)."""

from __future__ import annotations

from anyon.deployment.base import BaseDeployment


class LocalDeployment(BaseDeployment):
    mode = "local"
