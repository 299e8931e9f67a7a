"""``POST /api/task-attempts/{id}/run-agent-setup`` (spec §1.5): an agent's own setup helper.

Only Cursor Agent has one (capability SETUP_HELPER): its CLI is not on npm, so the helper installs it with
Cursor's installer when it is missing and reports whether it is signed in. It runs as a setup script in the
attempt's worktree (in the container in cloud mode), chained before the attempt's last agent request, which
then runs again with the CLI in place.
"""

from __future__ import annotations

from typing import Any

from anyon.services.agents.profile_catalog import CAPABILITIES, ExecutorProfileId
from anyon.services.errors import ServiceError
from anyon.services.executions import actions

CURSOR_SETUP_SCRIPT = """\
set -e
if command -v cursor-agent >/dev/null 2>&1; then
  echo "Cursor Agent is already installed: $(command -v cursor-agent)"
else
  echo "Installing Cursor Agent with Cursor's installer (needs network access)..."
  curl https://cursor.com/install -fsS | bash
  export PATH="$HOME/.local/bin:$PATH"
  echo "Installed: $(command -v cursor-agent || echo 'not found on the PATH; add ~/.local/bin to it')"
fi
if cursor-agent status 2>/dev/null | grep -qi "logged in"; then
  echo "Cursor Agent is signed in."
else
  echo "Cursor Agent is not signed in: sign in with the agent login of the web UI, or set CURSOR_API_KEY."
fi
"""


def setup_action(profile: ExecutorProfileId, last_agent_action: dict[str, Any] | None) -> dict[str, Any]:
    """The setup script of ``profile``'s executor, followed by the attempt's last agent request (if any)."""
    if "SETUP_HELPER" not in CAPABILITIES.get(profile.executor, []):
        raise ServiceError(
            f"{profile.executor} has no setup helper; run-agent-setup is only available for CURSOR_AGENT"
        )
    follow = None
    if last_agent_action is not None:
        follow = {"typ": last_agent_action["typ"], "next_action": last_agent_action.get("next_action")}
    return actions.script(CURSOR_SETUP_SCRIPT, actions.SETUP, follow)
