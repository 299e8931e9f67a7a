"""Subcommands of the ``anyon`` CLI beyond ``config``; each module exposes ``register(subparsers)``."""
