"""What the commands share: loading the config with a readable failure, common arguments, exit statuses."""

from __future__ import annotations

import argparse
import sys

from anyon.config import ConfigError, load_config
from anyon.config.model import AnyonConfig

#: exit statuses of ``config validate`` and ``doctor``: valid and ready, invalid settings, a machine
#: that cannot serve valid settings
EXIT_OK = 0
EXIT_INVALID = 1
EXIT_ENVIRONMENT = 2


def add_env_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="also read this systemd EnvironmentFile as the unit does; its variables win over the "
        "process environment and errors name its lines; --env-file=-PATH: the file may be missing",
    )


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings", metavar="PATH", help="system settings file (default /etc/anyon/settings.toml)"
    )
    parser.add_argument("--mode", choices=("local", "cloud"), help="deployment mode (overrides settings)")


def load_or_exit(args: argparse.Namespace, environ: dict[str, str] | None = None) -> AnyonConfig | None:
    """The validated config, or None after printing every error (the caller exits 1)."""
    try:
        return load_config(settings_file=args.settings, mode=args.mode, environ=environ)
    except ConfigError as exc:
        print(f"anyon: invalid configuration:\n{exc}", file=sys.stderr)
        return None
