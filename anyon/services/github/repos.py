"""The signed-in user's GitHub repositories, and cloning one into the workspace as a project."""

from __future__ import annotations

from typing import Any

from anyon.services.board.projects import ProjectService
from anyon.services.errors import ServiceError
from anyon.services.github.client import GitHubClient, GitHubError
from anyon.services.github.remotes import RemotePolicy
from anyon.services.github.tokens import GitHubTokens
from anyon.services.github.transport import clone

PER_PAGE = 100
MAX_PAGE = 1000


def repository_info(raw: dict[str, Any]) -> dict[str, Any]:
    """GitHub's repository object as the contract's ``RepositoryInfo``."""
    owner = raw.get("owner")
    return {
        "id": int(raw.get("id") or 0),
        "name": str(raw.get("name") or ""),
        "full_name": str(raw.get("full_name") or ""),
        "owner": str(owner.get("login") or "") if isinstance(owner, dict) else str(owner or ""),
        "description": raw.get("description") if isinstance(raw.get("description"), str) else None,
        "clone_url": str(raw.get("clone_url") or ""),
        "ssh_url": str(raw.get("ssh_url") or ""),
        "default_branch": str(raw.get("default_branch") or "main"),
        "private": bool(raw.get("private")),
    }


def github_failure(what: str, exc: GitHubError) -> ServiceError:
    hints = {
        "unauthorized": " (the GitHub token is expired or revoked: sign in again)",
        "forbidden": " (the token lacks the permission)",
        "not_found": " (not found, or the token has no access)",
    }
    return ServiceError(f"{what} failed: {exc.message}{hints.get(exc.kind, '')}")


class GitHubRepositories:
    def __init__(
        self,
        client: GitHubClient,
        tokens: GitHubTokens,
        remotes: RemotePolicy,
        projects: ProjectService,
    ) -> None:
        self._client = client
        self._tokens = tokens
        self._remotes = remotes
        self._projects = projects

    def _token(self) -> str:
        token = self._tokens.token()
        if token is None:
            raise ServiceError("Not signed in to GitHub: sign in or save a personal access token first")
        return token

    def list(self, page: int) -> list[dict[str, Any]]:
        if page < 1 or page > MAX_PAGE:
            raise ServiceError(f"page must be between 1 and {MAX_PAGE}")
        try:
            raw = self._client.repositories(self._token(), page, PER_PAGE)
        except GitHubError as exc:
            raise github_failure("Listing GitHub repositories", exc) from None
        return [repository_info(r) for r in raw]

    def clone_project(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/projects/from-github``: clone into ``<workspace>/<name>`` and register it."""
        remote = self._remotes.check(body["clone_url"])
        token = None if remote.local else self._tokens.token()
        scripts = {k: body.get(k) for k in ("setup_script", "dev_script", "cleanup_script")}
        return self._projects.create_cloned(body["name"], scripts, lambda path: clone(remote, path, token))
