"""The ``anyon`` subcommands (serve, config, migrate, doctor, user, audit), one module each.

Each module exposes ``register(subparsers)`` and is imported by :mod:`anyon.cli` only when its command
runs. This is the top layer: a command may import config, checks, deployment, services and the API
(inside its ``run`` where that keeps other commands fast); nothing in ``anyon`` imports a command.
"""
