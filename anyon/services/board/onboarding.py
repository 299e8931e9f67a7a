"""What follows the UI's first-run acknowledgement (spec §1.1 ``PUT /api/config``).

The first time ``disclaimer_acknowledged`` turns true, the reference looks for git repositories the
user already has and offers them as projects, so the board is not empty on first sight. Here too: when
no project exists yet, up to :data:`MAX_AUTO_PROJECTS` repositories found by the directory picker's
own discovery (home, or the configured project roots; most recently touched first) become projects.
It runs in the background — the config save answers at once — and anything it cannot use (a name the
project rules refuse, a path outside the roots, a race with a project the user creates meanwhile) is
skipped with a log line.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from anyon.services.board.filesystem import FilesystemService
from anyon.services.board.projects import ProjectService
from anyon.services.board.user_config import UserConfigService
from anyon.services.errors import ServiceError

log = logging.getLogger(__name__)

MAX_AUTO_PROJECTS = 3


class Onboarding:
    def __init__(
        self, user_config: UserConfigService, projects: ProjectService, filesystem: FilesystemService
    ) -> None:
        self._user_config = user_config
        self._projects = projects
        self._filesystem = filesystem
        self._running: set[asyncio.Task[Any]] = set()

    def save_config(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Save the UI config; also says whether this save acknowledged the disclaimer for the first time."""
        before = bool(self._user_config.get().get("disclaimer_acknowledged"))
        saved = self._user_config.save(body)
        return saved, not before and bool(saved.get("disclaimer_acknowledged"))

    def start_auto_setup(self) -> None:
        """Run :meth:`auto_setup` in the background of the serving loop."""
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._auto_setup_logged))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _auto_setup_logged(self) -> None:
        try:
            created = self.auto_setup()
        except Exception:
            log.exception("setting up projects after onboarding failed")
            return
        if created:
            log.info(
                "onboarding added %d project(s): %s", len(created), ", ".join(p["name"] for p in created)
            )

    def auto_setup(self) -> list[dict[str, Any]]:
        """Create projects for up to three discovered repositories, when there is no project yet."""
        if self._projects.list():
            return []
        created: list[dict[str, Any]] = []
        for repo in self._filesystem.find_git_repos(None):
            if len(created) >= MAX_AUTO_PROJECTS:
                break
            body = {"name": repo["name"], "git_repo_path": repo["path"], "use_existing_repo": True}
            try:
                created.append(self._projects.create(body))
            except ServiceError as exc:
                log.info("onboarding skipped %s: %s", repo["path"], exc.message)
        return created
