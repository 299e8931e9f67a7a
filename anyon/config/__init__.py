"""Configuration: the layered settings stack, validated into one frozen :class:`AnyonConfig`.

Only this package reads settings files and environment variables; everything else receives the
config (or parts of it) through constructors. It is the bottom layer and imports nothing outside
``anyon/config``: the commands that print and check the settings live in :mod:`anyon.commands`, the
checks of the machine in :mod:`anyon.checks`.
"""

from __future__ import annotations

from anyon.config.errors import ConfigError, ConfigIssue
from anyon.config.loader import EffectiveSettings, effective_settings, load_config
from anyon.config.model import AnyonConfig

__all__ = [
    "AnyonConfig",
    "ConfigError",
    "ConfigIssue",
    "EffectiveSettings",
    "effective_settings",
    "load_config",
]
