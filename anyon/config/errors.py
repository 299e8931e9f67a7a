"""Configuration problems as data, so every one of them can be reported in one run.

Modelled on docker-compose v1's config errors: each problem names the dotted key, the layer the value
came from (``file:line`` or the environment variable), what was expected and what was found.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from anyon.config.redact import redact_text

IssueKind = Literal["config", "environment", "warning"]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem with the settings; ``message`` is the full sentence shown to people."""

    key: str  # dotted key ("docker.memory"); "" when the problem is a whole file
    origin: str  # "default", "/etc/anyon/settings.toml:12", "env ANYON_DOCKER__MEMORY", ...
    expected: str
    found: str
    message: str
    kind: IssueKind = "config"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return self.message


class ConfigError(Exception):
    """The settings cannot become a valid :class:`~anyon.config.model.AnyonConfig`.

    ``errors`` holds every problem found in the run, not just the first one.
    """

    def __init__(self, errors: list[ConfigIssue], warnings: list[ConfigIssue] | None = None) -> None:
        self.errors = list(errors)
        self.warnings = list(warnings or [])
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.errors)
        head = "The configuration is invalid" + (f" ({count} problems):" if count != 1 else ":")
        return "\n".join([head, *(f"  - {issue.message}" for issue in self.errors)])


def make_issue(
    key: str, origin: str, expected: str, found: str, *, kind: IssueKind = "config", detail: str = ""
) -> ConfigIssue:
    """Build an issue whose message follows one sentence pattern everywhere."""
    # a value or detail may quote a database URL (or a driver's message about one): never its password
    found, detail = redact_text(found), redact_text(detail)
    where = f"{key} ({origin})" if key else origin
    message = f"{where}: {detail}" if detail else f"{where}: expected {expected}, found {found}"
    return ConfigIssue(key=key, origin=origin, expected=expected, found=found, message=message, kind=kind)
