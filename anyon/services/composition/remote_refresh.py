"""The fetch behind a branch status: the push path's remote policy and token, from the ``github`` settings."""

from __future__ import annotations

from anyon.config.model import AnyonConfig
from anyon.security.secrets import SecretProvider
from anyon.services.board.user_config import UserConfigService
from anyon.services.github.refresh import RemoteRefresh
from anyon.services.github.remotes import RemotePolicy
from anyon.services.github.tokens import GitHubTokens


def remote_refresh_for(config: AnyonConfig, user_config: UserConfigService) -> RemoteRefresh:
    """Built like ``github.service.build_github`` builds the push's: same policy, same token order."""
    settings = config.github
    provider = SecretProvider(config.auth)
    tokens = GitHubTokens(user_config, lambda: provider.get(settings.token_credential))
    remotes = RemotePolicy(settings.web_url, allow_local=settings.allow_local_remotes)
    return RemoteRefresh(remotes, tokens.token)
