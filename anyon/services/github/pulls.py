"""Push an attempt's branch, open or attach its pull request, and keep the PR's state on ``merges``.

The push always starts from the *project* repository's branch after the attempt's commits were
imported (:meth:`AttemptGitService.checkout`): in cloud mode the token stays on the host and never
enters the attempt's container or its repository.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import pygit2

from anyon.services.board.attempt_git import AttemptGitService
from anyon.services.board.changes import ChangeNotifier
from anyon.services.db.columns import utc_now
from anyon.services.db.database import Database
from anyon.services.db.models import Merge, Task, TaskAttempt
from anyon.services.errors import ServiceError
from anyon.services.git.repo import open_repo
from anyon.services.github.client import GitHubClient, GitHubError
from anyon.services.github.remotes import RemotePolicy, RemoteRepo
from anyon.services.github.tokens import GitHubTokens
from anyon.services.github.transport import push_branch
from anyon.services.team.access import current_principal

log = logging.getLogger(__name__)

REMOTE = "origin"
_PR_PATH = re.compile(r"^/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)/pull/(\d{1,10})/?$")
#: GitHubServiceError, the typed ``error_data`` of ``POST …/pr`` (types.md)
TYPED = {
    "unauthorized": "TOKEN_INVALID",
    "forbidden": "INSUFFICIENT_PERMISSIONS",
    "not_found": "REPO_NOT_FOUND_OR_NO_ACCESS",
}


def pr_status(pr: dict[str, Any]) -> str:
    if pr.get("merged") or pr.get("merged_at"):
        return "merged"
    state = pr.get("state")
    return state if state in ("open", "closed") else "open"


def _timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_pr_url(url: str) -> tuple[str, str, int] | None:
    """(owner, repo, number) of a PR page URL, None when it is not one."""
    match = _PR_PATH.match(urlsplit(url).path)
    return (match.group(1), match.group(2), int(match.group(3))) if match else None


def apply_pr_state(row: Merge, pr: dict[str, Any]) -> bool:
    """Copy a GitHub PR's state onto its merges row; True when it changed."""
    status = pr_status(pr)
    merged_at = _timestamp(pr.get("merged_at")) if status == "merged" else None
    sha = pr.get("merge_commit_sha") if status == "merged" else None
    changed = (row.pr_status, row.pr_merged_at, row.pr_merge_commit_sha) != (status, merged_at, sha)
    row.pr_status, row.pr_merged_at, row.pr_merge_commit_sha = status, merged_at, sha
    return changed


class PullRequests:
    def __init__(
        self,
        database: Database,
        changes: ChangeNotifier,
        attempt_git: AttemptGitService,
        client: GitHubClient,
        tokens: GitHubTokens,
        remotes: RemotePolicy,
    ) -> None:
        self._db = database
        self._changes = changes
        self._git = attempt_git
        self._client = client
        self._tokens = tokens
        self._remotes = remotes

    # -- push ------------------------------------------------------------------------------------
    def _remote_of(self, repo_path: str) -> RemoteRepo:
        try:
            url = open_repo(repo_path).remotes[REMOTE].url
        except (KeyError, pygit2.GitError):
            url = None
        if not url:
            raise ServiceError(
                f"The project's repository has no '{REMOTE}' remote: "
                "add one pointing at its GitHub repository"
            )
        return self._remotes.check(url)

    def _token_for(self, remote: RemoteRepo) -> str | None:
        token = self._tokens.token()
        if token is None and not remote.local:
            raise ServiceError("Not signed in to GitHub: sign in or save a personal access token first")
        return token

    async def _pushed(self, attempt_id: uuid.UUID) -> tuple[TaskAttempt, Task, RemoteRepo]:
        _checkout, attempt, task, project = await self._git.checkout(attempt_id)

        def push() -> RemoteRepo:
            remote = self._remote_of(project.git_repo_path)
            token = None if remote.local else self._token_for(remote)
            push_branch(project.git_repo_path, attempt.branch, remote, token, REMOTE)
            log.info("pushed %s to %s/%s", attempt.branch, remote.owner, remote.name)
            return remote

        return attempt, task, await asyncio.to_thread(push)

    async def push(self, attempt_id: uuid.UUID) -> None:
        await self._pushed(attempt_id)

    # -- create / attach ---------------------------------------------------------------------------
    def _api_token(self) -> str:
        token = self._tokens.token()
        if token is None:
            raise ServiceError("Not signed in to GitHub", error_data="TOKEN_INVALID")
        return token

    async def create(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> str:
        """``POST …/pr``: push, open the PR (or adopt the one GitHub says exists), record it; its URL."""
        title = (body.get("title") or "").strip()
        if not title:
            raise ServiceError("Failed to create PR: the title must not be empty")
        token = self._api_token()
        attempt, task, remote = await self._pushed(attempt_id)
        base = (body.get("target_branch") or attempt.target_branch).removeprefix(f"{REMOTE}/")
        text = body.get("body") if body.get("body") is not None else task.description

        def open_pr() -> dict[str, Any]:
            try:
                return self._client.create_pull(
                    token, remote.owner, remote.name, title, text, attempt.branch, base
                )
            except GitHubError as exc:
                if exc.kind in TYPED:
                    raise ServiceError(exc.message, error_data=TYPED[exc.kind]) from None
                if exc.kind == "unprocessable":
                    existing = self._open_pr_for(token, remote, attempt.branch)
                    if existing is not None:
                        return existing
                raise ServiceError(f"Failed to create PR: {exc.message}") from None

        pr = await asyncio.to_thread(open_pr)
        await asyncio.to_thread(self._record, attempt, task, pr, base)
        return str(pr.get("html_url"))

    def _open_pr_for(self, token: str, remote: RemoteRepo, branch: str) -> dict[str, Any] | None:
        pulls = self._client.pulls_for_branch(token, remote.owner, remote.name, branch)
        return next((p for p in pulls if p.get("state") == "open"), None)

    async def attach(self, attempt_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        """``POST …/pr/attach``: the branch's PR (or the one named by number/URL), recorded on the attempt."""
        _checkout, attempt, task, project = await self._git.checkout(attempt_id)

        def find() -> dict[str, Any] | None:
            remote = self._remote_of(project.git_repo_path)
            token = self._api_token()
            number = body.get("pr_number")
            if body.get("pr_url"):
                parsed = parse_pr_url(body["pr_url"])
                host = (urlsplit(body["pr_url"]).hostname or "").lower()
                if parsed is None or host != self._remotes.host:
                    raise ServiceError(f"{body['pr_url']} is not a pull request URL of {self._remotes.host}")
                if (parsed[0].lower(), parsed[1].lower()) != (remote.owner.lower(), remote.name.lower()):
                    raise ServiceError(
                        f"{body['pr_url']} belongs to another repository than {remote.owner}/{remote.name}"
                    )
                number = parsed[2]
            try:
                if number is not None:
                    if number < 1:
                        raise ServiceError("pr_number must be a positive number")
                    return self._client.pull(token, remote.owner, remote.name, number).data  # type: ignore[no-any-return]
                pulls = self._client.pulls_for_branch(token, remote.owner, remote.name, attempt.branch)
            except GitHubError as exc:
                if exc.kind == "not_found" and number is not None:
                    raise ServiceError(
                        f"Pull request #{number} not found in {remote.owner}/{remote.name}"
                    ) from None
                raise ServiceError(f"Failed to attach PR: {exc.message}") from None
            return pulls[0] if pulls else None

        pr = await asyncio.to_thread(find)
        if not isinstance(pr, dict):
            return {"pr_attached": False, "pr_url": None, "pr_number": None, "pr_status": None}
        row = await asyncio.to_thread(self._record, attempt, task, pr, attempt.target_branch)
        return {
            "pr_attached": True,
            "pr_url": row.pr_url,
            "pr_number": row.pr_number,
            "pr_status": row.pr_status,
        }

    # -- records ---------------------------------------------------------------------------------
    def _record(self, attempt: TaskAttempt, task: Task, pr: dict[str, Any], base: str) -> Merge:
        """Insert or update the attempt's ``pr`` merges row; a merged PR sets the task ``done``."""
        try:
            number, url = int(pr["number"]), str(pr["html_url"])
        except (KeyError, TypeError, ValueError):
            raise ServiceError("GitHub's pull request answer has no number or URL") from None
        base_ref = pr.get("base")
        target = str(base_ref.get("ref")) if isinstance(base_ref, dict) and base_ref.get("ref") else base
        with self._db.connection(), self._db.atomic():
            row = Merge.get_or_none(
                (Merge.task_attempt == attempt.id) & (Merge.merge_type == "pr") & (Merge.pr_number == number)
            )
            new = row is None
            if row is None:
                row = Merge(
                    task_attempt=attempt.id,
                    merge_type="pr",
                    pr_number=number,
                    pr_url=url,
                    target_branch_name=target,
                    # who opened (or attached) it: the monitor polls it with that account's token
                    user_id=_opener(attempt),
                )
            row.pr_url = url
            apply_pr_state(row, pr)
            row.save(force_insert=new)
            if row.pr_status == "merged":
                Task.update(status="done", updated_at=utc_now()).where(Task.id == task.id).execute()
        self._changes.task_changed(task.id)
        return row


def _opener(attempt: TaskAttempt) -> str | None:
    """The acting account; work no request started falls back to the account that started the attempt."""
    principal = current_principal()
    return principal.user_id if principal is not None else attempt.user_id
