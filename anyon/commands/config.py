"""``anyon config validate`` and ``anyon config show``.

Kept apart from the server commands so that ``validate`` (run in ExecStartPre) imports the config
package and, once the settings are valid, :mod:`anyon.checks` (the token; every check with ``--online``),
and nothing of the server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from anyon.commands.common import EXIT_ENVIRONMENT, EXIT_INVALID, EXIT_OK, add_env_file_argument
from anyon.config.errors import ConfigIssue
from anyon.config.fields import catalogue, section_classes
from anyon.config.layers import suggestion
from anyon.config.loader import (
    DEFAULT_SETTINGS_FILE,
    SETTINGS_FILE_ENV,
    EffectiveSettings,
    effective_settings,
)
from anyon.config.model import AnyonConfig
from anyon.config.redact import redact_url

if TYPE_CHECKING:
    from anyon.checks import CheckResult


def register(subparsers: Any) -> None:
    """Add the ``config`` command group to the top-level parser."""
    config = subparsers.add_parser(
        "config", help="check or print the effective settings", description="Check or print the settings."
    )
    commands = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--settings",
            metavar="PATH",
            help=f"system settings file (default: ${SETTINGS_FILE_ENV} or {DEFAULT_SETTINGS_FILE})",
        )
        parser.add_argument("--mode", choices=("local", "cloud"), help="deployment mode (wins over settings)")
        add_env_file_argument(parser)

    validate = commands.add_parser(
        "validate",
        help="check the settings; exit 0 valid, 1 invalid, 2 valid but this machine cannot serve them",
        description="Check every layer of the settings and report every problem at once. Exit status: "
        "0 valid, 1 invalid (or warnings with --strict), 2 valid but the environment cannot serve it "
        "(e.g. a directory that cannot be created). Creates nothing on disk.",
    )
    common(validate)
    validate.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    validate.add_argument("--strict", action="store_true", help="treat warnings as errors")
    validate.add_argument(
        "--online",
        action="store_true",
        help="also run the environment checks of `anyon doctor` (Docker, image, disk, database, token)",
    )
    validate.set_defaults(func=run_validate)

    show = commands.add_parser(
        "show",
        help="print the effective settings",
        description="Print the effective settings (secrets masked as ***).",
    )
    common(show)
    show.add_argument("--origin", action="store_true", help="name the layer each value comes from")
    show.add_argument("--format", choices=("toml", "json"), default="toml", help="output format")
    show.add_argument("key", nargs="?", metavar="KEY", help="a section (docker) or a key (docker.memory)")
    show.set_defaults(func=run_show)


# --- validate --------------------------------------------------------------------------------------


def run_validate(args: argparse.Namespace) -> int:
    from anyon.config.dirs import check_directories

    result = effective_settings(args.settings, args.mode, env_file=args.env_file)
    environment: list[ConfigIssue] = []
    if result.errors:
        code = EXIT_INVALID
    else:
        assert result.config is not None
        environment = check_directories(result.config)
        environ = {**os.environ, **_env_file_values(args)}
        if getattr(args, "online", False):
            environment += _online_issues(result.config, environ)
        else:
            environment += _token_issues(result.config, environ)
        code = EXIT_ENVIRONMENT if environment else EXIT_OK
    if code == EXIT_OK and args.strict and result.warnings:
        code = EXIT_INVALID
    errors = result.errors + environment
    if args.format == "json":
        report = {
            "valid": code == EXIT_OK,
            "exit_code": code,
            "mode": result.mode,
            "settings_file": result.settings_file,
            "errors": [issue.as_dict() for issue in errors],
            "warnings": [issue.as_dict() for issue in result.warnings],
        }
        print(json.dumps(report, indent=2))
        return code
    for warning in result.warnings:
        print(f"WARNING: {warning.message}", file=sys.stderr)
    if code == EXIT_OK:
        source = result.settings_file or "no system settings file"
        print(f"The configuration is valid (mode {result.mode}, {source}).")
    elif result.errors:
        _print_issues("The configuration is invalid", result.errors)
    elif environment:
        _print_issues("The configuration is valid, but this machine cannot serve it", environment)
    else:
        print("ERROR: warnings are errors with --strict", file=sys.stderr)
    return code


def _env_file_values(args: argparse.Namespace) -> dict[str, str]:
    if not getattr(args, "env_file", None):
        return {}
    from anyon.config.envfile import read_env_file

    return read_env_file(args.env_file).values


def _token_issues(config: AnyonConfig, environ: dict[str, str]) -> list[ConfigIssue]:
    """The API token as ``serve`` will read it (owner, mode, emptiness): the check of ``anyon.checks``,
    so ``validate`` cannot pass a token file that start-up then refuses."""
    from anyon.checks import check_api_token

    return _as_issues([check_api_token(config, environ)])


def _as_issues(checks: list[CheckResult]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for check in checks:
        if check.status == "fail":
            message = f"{check.name}: {check.message} (fix: {check.hint})"
            issues.append(ConfigIssue("", "this machine", "", "", message, kind="environment"))
        elif check.status == "warn":
            print(f"WARNING: {check.name}: {check.message} (fix: {check.hint})", file=sys.stderr)
    return issues


def _online_issues(config: AnyonConfig, environ: dict[str, str]) -> list[ConfigIssue]:
    """The failed environment checks as issues; warnings are printed and do not change the status."""
    from anyon.checks import run_checks  # imported only with --online: validate stays fast without it

    return _as_issues(run_checks(config, environ=environ))


def _print_issues(head: str, issues: list[ConfigIssue]) -> None:
    count = f" ({len(issues)} problems)" if len(issues) != 1 else ""
    print(f"ERROR: {head}{count}:", file=sys.stderr)
    for issue in issues:
        print(f"  - {issue.message}", file=sys.stderr)


# --- show ------------------------------------------------------------------------------------------


def run_show(args: argparse.Namespace) -> int:
    """Print what could be resolved even when the settings are invalid: that is when people need it.

    Invalid values are shown as written and marked; the problems go to stderr and the exit status is 1.
    """
    result = effective_settings(args.settings, args.mode, env_file=args.env_file)
    keys = _select(result, args.key)
    if keys is None:
        return EXIT_INVALID
    problems: dict[str, str] = {}
    for issue in result.errors:
        if issue.key in result.invalid:
            problems.setdefault(issue.key, f"expected {issue.expected}")
    tree: dict[str, dict[str, Any]] = {}
    for key in keys:
        section, _, name = key.partition(".")
        tree.setdefault(section, {})[name] = key
    if args.format == "json":
        out: dict[str, dict[str, Any]] = {}
        for section, names in tree.items():
            for name, key in names.items():
                value = _public_value(result, key)
                if args.origin:
                    origin = result.origins[key]
                    value = {"value": value, "origin": origin.text, "layer": origin.layer}
                    if key in problems:
                        value["invalid"] = problems[key]
                out.setdefault(section, {})[name] = value
        print(json.dumps(out, indent=2))
    else:
        lines: list[str] = []
        for section, names in tree.items():
            if lines:
                lines.append("")
            lines.append(f"[{section}]")
            for name, key in names.items():
                line = f"{name} = {_toml_value(_public_value(result, key))}"
                if args.origin:
                    line += f"  # {result.origins[key].text}"
                if key in problems:
                    line += f"{'' if args.origin else '  #'}  INVALID: {problems[key]}"
                lines.append(line)
        print("\n".join(lines))
    if result.errors:
        _print_issues("The configuration is invalid", result.errors)
        return EXIT_INVALID
    return EXIT_OK


def _select(result: EffectiveSettings, wanted: str | None) -> list[str] | None:
    keys = list(result.values)
    if wanted is None:
        return keys
    if wanted in section_classes():
        return [k for k in keys if k.startswith(wanted + ".")]
    if wanted in result.values:
        return [wanted]
    choices = list(section_classes()) + keys
    print(f'ERROR: no setting or section "{wanted}"{suggestion(wanted, choices)}', file=sys.stderr)
    return None


def _public_value(result: EffectiveSettings, key: str) -> Any:
    value = result.invalid[key] if key in result.invalid else result.values[key]
    if catalogue()[key].is_secret and isinstance(value, str):
        return redact_url(value) if "://" in value else "***"
    if isinstance(value, tuple):
        return list(value)
    return value


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
