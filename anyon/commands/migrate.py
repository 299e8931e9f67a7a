"""``anyon migrate``: bring the database schema to the version this code knows."""

from __future__ import annotations

import argparse
import sys

from anyon.commands.common import add_settings_arguments, load_or_exit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("migrate", help="apply pending database migrations and exit")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from anyon.config.dirs import prepare_directories
    from anyon.config.redact import redact_text, url_secrets
    from anyon.services.db.database import Database

    config = load_or_exit(args)
    if config is None:
        return 1
    try:
        prepare_directories(config)
        database = Database.from_url(config.database_url, busy_timeout_ms=config.database.busy_timeout_ms)
        version = database.migrate()
        database.close_all()  # every pooled connection: SQLite checkpoints its WAL on the last one
    except Exception as exc:
        print(f"anyon migrate: {redact_text(str(exc), url_secrets(config.database_url))}", file=sys.stderr)
        return 1
    print(f"database at schema version {version}")
    return 0
