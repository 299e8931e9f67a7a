"""The GitHub services of one deployment, built together from the ``github`` settings."""

from __future__ import annotations

from dataclasses import dataclass

from anyon.config.model import AnyonConfig
from anyon.security.secrets import SecretProvider
from anyon.services.board.attempt_git import AttemptGitService
from anyon.services.board.changes import ChangeNotifier
from anyon.services.board.projects import ProjectService
from anyon.services.board.user_config import UserConfigService
from anyon.services.db.database import Database
from anyon.services.github.client import GitHubClient
from anyon.services.github.monitor import PrMonitor
from anyon.services.github.pulls import PullRequests
from anyon.services.github.remotes import RemotePolicy
from anyon.services.github.repos import GitHubRepositories
from anyon.services.github.signin import GitHubSignIn
from anyon.services.github.tokens import GitHubTokens


@dataclass
class GitHub:
    client: GitHubClient
    tokens: GitHubTokens
    signin: GitHubSignIn
    repositories: GitHubRepositories
    pulls: PullRequests
    monitor: PrMonitor

    def close(self) -> None:
        self.client.close()


def build_github(
    config: AnyonConfig,
    database: Database,
    changes: ChangeNotifier,
    user_config: UserConfigService,
    projects: ProjectService,
    attempt_git: AttemptGitService,
) -> GitHub:
    settings = config.github
    provider = SecretProvider(config.auth)
    tokens = GitHubTokens(user_config, lambda: provider.get(settings.token_credential))
    client = GitHubClient(settings.api_url, settings.web_url, settings.timeout_seconds)
    remotes = RemotePolicy(settings.web_url, allow_local=settings.allow_local_remotes)
    return GitHub(
        client=client,
        tokens=tokens,
        signin=GitHubSignIn(client, tokens, user_config, settings.client_id),
        repositories=GitHubRepositories(client, tokens, remotes, projects),
        pulls=PullRequests(database, changes, attempt_git, client, tokens, remotes),
        monitor=PrMonitor(database, changes, client, tokens, settings.pr_monitor_interval_seconds),
    )
