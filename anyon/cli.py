"""The ``anyon`` command line: each command is a plug-in module of :mod:`anyon.commands`.

Commands live in modules exposing ``register(subparsers)``; each sub-parser sets ``func``, a callable
taking the parsed arguments and returning the exit status. Modules listed in ``COMMAND_MODULES`` are
optional: one that does not exist yet is skipped. Only the modules a command needs are imported, so
``anyon config validate`` (run in ExecStartPre) stays fast whatever the server commands import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from anyon import __version__

#: command name -> module providing ``register(subparsers)``, in ``--help`` order
COMMAND_MODULES: dict[str, str] = {
    "serve": "anyon.commands.serve",
    "config": "anyon.commands.config",
    "migrate": "anyon.commands.migrate",
    "doctor": "anyon.commands.doctor",
    "user": "anyon.commands.users",
    "audit": "anyon.commands.audit",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` just that command's (the others are not imported)."""
    parser = argparse.ArgumentParser(
        prog="anyon",
        description="The server behind the Anyon task board.",
        epilog="Run 'anyon COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"anyon {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMAND_MODULES.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            package = module_name.rpartition(".")[0]
            if exc.name in (module_name, package):
                continue  # that command is not part of this build yet
            raise
        module.register(subparsers)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMAND_MODULES and not (argv and argv[0].startswith("-")) else None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``anyon`` console script; returns the exit status."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_of(args_list))
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
