"""``anyon doctor``: can this machine serve this configuration? (See :mod:`anyon.checks`.)

Exit status as ``anyon config validate``: 0 ready (warnings allowed), 1 the settings are invalid (or
warnings with ``--strict``), 2 valid settings that this machine cannot serve.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from anyon.commands.common import EXIT_ENVIRONMENT, EXIT_INVALID, EXIT_OK, add_env_file_argument


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check that this machine can serve the settings (Docker, image, dirs, disk, git, DB, token)",
        description="Run the environment checks that cloud start-up runs and print ok/warn/fail with a hint "
        "each. Exit status: 0 ready, 1 invalid settings (or warnings with --strict), 2 this machine cannot "
        "serve the settings.",
    )
    parser.add_argument(
        "--settings", metavar="PATH", help="system settings file (default /etc/anyon/settings.toml)"
    )
    parser.add_argument("--mode", choices=("local", "cloud"), help="deployment mode (overrides settings)")
    add_env_file_argument(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--strict", action="store_true", help="treat warnings as failures (exit 1)")
    parser.set_defaults(func=run)


def exit_code(statuses: set[str], strict: bool) -> int:
    if "fail" in statuses:
        return EXIT_ENVIRONMENT
    if strict and "warn" in statuses:
        return EXIT_INVALID
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from anyon.checks import run_checks
    from anyon.config import effective_settings
    from anyon.config.envfile import read_env_file

    settings = effective_settings(args.settings, args.mode, env_file=args.env_file)
    environ = {**os.environ, **(read_env_file(args.env_file).values if args.env_file else {})}
    if settings.errors or settings.config is None:
        if args.format == "json":
            report = {
                "ready": False,
                "exit_code": EXIT_INVALID,
                "errors": [issue.as_dict() for issue in settings.errors],
                "checks": [],
            }
            print(json.dumps(report, indent=2))
        else:
            print("fail settings: the configuration is invalid", file=sys.stderr)
            for issue in settings.errors:
                print(f"  - {issue.message}", file=sys.stderr)
            print("     hint: run `anyon config validate` and fix each problem", file=sys.stderr)
        return EXIT_INVALID
    for warning in settings.warnings:
        if args.format != "json":
            print(f"warn settings: {warning.message}")
    results = run_checks(settings.config, environ=environ)
    code = exit_code({r.status for r in results}, args.strict)
    if args.format == "json":
        report = {
            "ready": code == EXIT_OK,
            "exit_code": code,
            "mode": settings.mode,
            "checks": [r.as_dict() for r in results],
        }
        print(json.dumps(report, indent=2))
        return code
    for result in results:
        print(result.line())
    summary = {"ok": "ready to serve", "warn": "ready, with warnings"}.get(
        "fail"
        if code == EXIT_ENVIRONMENT
        else ("warn" if any(r.status == "warn" for r in results) else "ok"),
        "this machine cannot serve the settings",
    )
    print(f"\n{summary} (mode {settings.mode})")
    return code
