"""The PR monitor: polls the open pull requests recorded on ``merges`` and closes their tasks on merge.

Every ``github.pr_monitor_interval_seconds`` each open PR is fetched with ``If-None-Match`` (its last
``ETag``, kept in memory): an unchanged PR answers 304, which GitHub does not count against the rate
limit. A merged PR gets its status, merge time and merge commit stored and its task set ``done``; a
closed one is stored as closed.

On errors the monitor backs off and says why in the log, never with the token:

* rate limited (403/429 with ``Retry-After``, or ``X-RateLimit-Remaining: 0``): it sleeps until GitHub's
  reset time (at least the interval), then resumes;
* the token is refused (401) or missing: one warning, then it waits — doubling up to
  :data:`MAX_BACKOFF` — and resumes when a token works again;
* GitHub unreachable, timeouts, 5xx: the wait doubles up to :data:`MAX_BACKOFF`, reset by a good pass;
* one PR that fails (deleted repository, 404): logged and skipped, the other PRs are still polled.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from anyon.services.board.changes import ChangeNotifier
from anyon.services.db.columns import utc_now
from anyon.services.db.database import Database
from anyon.services.db.models import Merge, Task, TaskAttempt
from anyon.services.github.client import GitHubClient, GitHubError, rate_limit_wait
from anyon.services.github.pulls import apply_pr_state, parse_pr_url
from anyon.services.github.tokens import GitHubTokens

log = logging.getLogger(__name__)

MAX_BACKOFF = 30 * 60.0


@dataclass
class PassResult:
    checked: int = 0
    merged: int = 0
    unchanged: int = 0
    wait: float | None = None  # seconds GitHub asked us to wait (rate limit)
    failed: bool = False  # the whole pass failed (token, network)


class PrMonitor:
    def __init__(
        self,
        database: Database,
        changes: ChangeNotifier,
        client: GitHubClient,
        tokens: GitHubTokens,
        interval: float,
    ) -> None:
        self._db = database
        self._changes = changes
        self._client = client
        self._tokens = tokens
        self._interval = interval
        self._etags: dict[uuid.UUID, str] = {}
        self._last_problem: str | None = None

    def _open_rows(self) -> list[Merge]:
        with self._db.connection():
            return list(Merge.select().where((Merge.merge_type == "pr") & (Merge.pr_status == "open")))

    def _problem(self, text: str) -> None:
        """Warn once per kind of problem (a long outage must not flood the log)."""
        if text != self._last_problem:
            log.warning("PR monitor: %s", self._tokens.redact(text))
            self._last_problem = text

    def poll_once(self) -> PassResult:
        """One pass. Each PR is polled with the token of the account that opened it (``merges.user_id``,
        cloud mode with accounts), else the deployment's; a token that is missing or refused skips only
        the PRs polled with it."""
        result = PassResult()
        rows = self._open_rows()
        if not rows:
            return result
        by_token: dict[str, list[Merge]] = {}
        for row in rows:
            token = self._tokens.token_of(row.user_id) or self._tokens.token_of(None)
            if token is None:
                self._problem("no GitHub token; open pull requests are not followed until one is set")
                result.failed = True
                continue
            by_token.setdefault(token, []).append(row)
        for token, group in by_token.items():
            if not self._poll_group(token, group, result):
                return result
        if not result.failed:
            self._last_problem = None
        return result

    def _poll_group(self, token: str, rows: list[Merge], result: PassResult) -> bool:
        """Poll the PRs of one token; False when the whole pass must stop (rate limited)."""
        for row in rows:
            parsed = parse_pr_url(row.pr_url or "")
            if parsed is None:
                continue
            owner, repo, number = parsed
            try:
                response = self._client.pull(token, owner, repo, number, self._etags.get(row.id))
            except GitHubError as exc:
                message = self._tokens.redact(exc.message, token)
                if exc.kind == "rate_limited":
                    self._problem(f"rate limited by GitHub; pausing {exc.retry_after:.0f} s")
                    result.wait = exc.retry_after
                    return False
                if exc.kind in ("unauthorized", "unreachable"):
                    self._problem(f"{message}; backing off")
                    result.failed = True
                    return exc.kind != "unreachable"  # another account's token may still work
                log.warning("PR monitor: %s/%s#%d: %s", owner, repo, number, message)
                continue
            result.checked += 1
            wait = rate_limit_wait(response.headers)
            if response.etag:
                self._etags[row.id] = response.etag
            if response.status == 304 or not isinstance(response.data, dict):
                result.unchanged += 1
            elif self._store(row, response.data):
                result.merged += 1
            if wait is not None:  # the budget is spent: stop before GitHub refuses
                self._problem(f"GitHub rate limit exhausted; pausing {wait:.0f} s")
                result.wait = wait
                return False
        return True

    def _store(self, row: Merge, pr: dict[str, object]) -> bool:
        """Save the PR's state; True when it just merged (and its task was set ``done``)."""
        if not apply_pr_state(row, pr):
            return False
        task_id = None
        with self._db.connection(), self._db.atomic():
            row.save()
            if row.pr_status == "merged":
                attempt = TaskAttempt.get_or_none(TaskAttempt.id == row.task_attempt_id)
                if attempt is not None:
                    task_id = attempt.task_id
                    Task.update(status="done", updated_at=utc_now()).where(Task.id == task_id).execute()
        if row.pr_status != "open":
            self._etags.pop(row.id, None)
        if task_id is not None:
            log.info("PR %s merged; its task is done", row.pr_url)
            self._changes.task_changed(task_id)
        return task_id is not None

    def next_wait(self, result: PassResult, backoff: float) -> tuple[float, float]:
        """(seconds until the next pass, the backoff to carry): rate limits and failures wait longer."""
        if result.wait is not None:
            return max(self._interval, result.wait + 1.0), self._interval
        if result.failed:
            backoff = min(MAX_BACKOFF, max(self._interval, backoff * 2))
            return backoff, backoff
        return self._interval, self._interval

    async def loop(self) -> None:
        """The background job; never raises (an unexpected error is logged and the loop backs off)."""
        if self._interval <= 0:
            return
        backoff = self._interval
        while True:
            started = time.monotonic()
            try:
                result = await asyncio.to_thread(self.poll_once)
            except Exception as exc:
                self._problem(f"pass failed ({type(exc).__name__}: {exc})")
                result = PassResult(failed=True)
            wait, backoff = self.next_wait(result, backoff)
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))
