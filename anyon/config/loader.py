"""The settings stack: packaged defaults -> system file -> [cloud] sections -> environment.

``load_config`` is the one way to get an :class:`AnyonConfig`; ``effective_settings`` is the same run
keeping every value's origin, for ``anyon config show --origin``.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from anyon.config import model
from anyon.config.convert import convert, expand_strings, references
from anyon.config.envfile import read_env_file, world_readable_secret
from anyon.config.errors import ConfigError, ConfigIssue, make_issue
from anyon.config.fields import FieldSpec, catalogue, section_classes
from anyon.config.layers import (
    Entry,
    FileLayers,
    Layer,
    Origin,
    read_environment,
    read_toml_file,
    show_value,
)
from anyon.config.merge import merge_layers
from anyon.config.redact import url_secrets
from anyon.config.semantics import semantic_checks

DEFAULT_SETTINGS_FILE = "/etc/anyon/settings.toml"
SETTINGS_FILE_ENV = "ANYON_SETTINGS_FILE"
MODE_ENV = "ANYON_DEPLOYMENT_MODE"


def defaults_file() -> str:
    """The packaged ``settings/defaults.toml`` (source checkout, or installed under ``share/anyon``)."""
    candidates = [
        Path(__file__).resolve().parents[2] / "settings" / "defaults.toml",
        Path(sys.prefix) / "share" / "anyon" / "settings" / "defaults.toml",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return str(candidates[0])


@dataclass
class EffectiveSettings:
    """Everything one run of the stack learned: typed values, origins, problems."""

    mode: str
    settings_file: str | None  # the system file that was read, or None
    values: dict[str, object] = field(default_factory=dict)  # dotted key -> typed value
    origins: dict[str, Origin] = field(default_factory=dict)
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    config: model.AnyonConfig | None = None
    #: keys whose value is invalid -> the value as written (``${...}`` resolved where possible)
    invalid: dict[str, object] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors


def load_config(
    settings_file: str | None = None, mode: str | None = None, environ: Mapping[str, str] | None = None
) -> model.AnyonConfig:
    """Build the validated config; raises :class:`ConfigError` listing every problem."""
    result = effective_settings(settings_file, mode, environ)
    if result.errors or result.config is None:
        raise ConfigError(result.errors, result.warnings)
    return result.config


def effective_settings(
    settings_file: str | None = None,
    mode: str | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: str | None = None,
) -> EffectiveSettings:
    """Run the whole stack without raising: values, origins, errors and warnings.

    ``settings_file`` and ``mode`` are the ``--settings`` and ``--mode`` options (they win over
    ``ANYON_SETTINGS_FILE`` and every other source of the mode). ``environ`` defaults to ``os.environ``;
    ``env_file`` is a systemd EnvironmentFile whose variables win over it (``--env-file``).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    errors: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    env_origins: dict[str, str] = {}
    if env_file is not None:
        parsed = read_env_file(env_file)
        errors += parsed.issues
        warnings += parsed.warnings
        env = {**env, **parsed.values}
        env_origins = {name: parsed.origin(name) for name in parsed.values}

    defaults = read_toml_file(defaults_file(), "default", "default-cloud", label="default")
    errors += defaults.issues

    system_file, explicit_origin = _choose_settings_file(settings_file, env)
    layers_file = None
    if explicit_origin is not None and not os.path.exists(system_file):
        errors.append(
            make_issue(
                "",
                explicit_origin,
                "an existing settings file",
                show_value(system_file),
                detail=f"the settings file {system_file} does not exist",
            )
        )
    elif os.path.exists(system_file):
        layers_file = read_toml_file(system_file, "file", "file-cloud")
        errors += layers_file.issues
        warnings += _secret_in_readable_file(system_file, layers_file)

    environment = read_environment(env, env_origins)
    errors += environment.issues
    warnings += environment.warnings

    option = Layer("option")
    if mode is not None:
        option.entries["deployment.mode"] = Entry(mode, Origin("option", "option --mode"))

    base = [
        defaults.top,
        *([layers_file.top] if layers_file else []),
        environment.nested,
        environment.flat,
        option,
    ]
    chosen = "local"
    for layer in base:
        if "deployment.mode" in layer.entries:
            chosen_value = layer.entries["deployment.mode"].value
            chosen = chosen_value if isinstance(chosen_value, str) else chosen
    cloud = chosen == "cloud"

    stack: list[Layer] = [defaults.top]
    if cloud:
        stack.append(defaults.cloud)
    if layers_file:
        stack.append(layers_file.top)
        if cloud:
            stack.append(layers_file.cloud)
    stack += [environment.nested, environment.flat, option]

    merged = merge_layers(stack)
    specs = catalogue()
    for key, spec in specs.items():
        if key not in merged:
            if spec.has_default:
                merged[key] = Entry(spec.default, Origin("default", "default"))
            else:
                errors.append(
                    make_issue(
                        key, "default", "a value", "nothing", detail="no layer sets this required setting"
                    )
                )
    raw_values, expand_issues = expand_strings(merged, specs, env)
    errors += expand_issues

    result = EffectiveSettings(mode=chosen, settings_file=system_file if layers_file else None)
    own_issues: dict[str, ConfigIssue] = {}
    for key, spec in specs.items():
        if key not in merged:
            continue
        origin = merged[key].origin
        value, issue = convert(spec, raw_values[key], origin.text)
        result.origins[key] = origin
        result.values[key] = value
        if issue:
            own_issues[key] = issue
    errors += shadowed_issues(stack, merged, specs)
    bad_keys = set(own_issues) | {issue.key for issue in expand_issues}
    for key, issue in own_issues.items():
        # a value derived from an invalid one (${paths.temp_dir}/worktrees) is not reported again
        if not bad_keys.intersection(references(merged[key].value)):
            errors.append(issue)
    more_errors, more_warnings = semantic_checks(
        result.values, {k: o.text for k, o in result.origins.items()}, specs, env
    )
    for issue in [*expand_issues, *own_issues.values(), *more_errors]:
        if issue.key in merged:
            raw = raw_values.get(issue.key)
            result.invalid.setdefault(issue.key, merged[issue.key].value if raw is None else raw)
    result.errors = errors + more_errors
    result.warnings = warnings + more_warnings
    if not result.errors:
        result.config = build_config(result.values, result.warnings)
    return result


def _secret_in_readable_file(path: str, layers: FileLayers) -> list[ConfigIssue]:
    """A settings file every local account can read must not hold the database password."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return []
    if not mode & stat.S_IROTH:
        return []
    for layer in (layers.top, layers.cloud):
        entry = layer.entries.get("database.url")
        if entry is not None and isinstance(entry.value, str) and url_secrets(entry.value):
            return [world_readable_secret(path, mode, "database.url with a password", entry.origin.text)]
    return []


def shadowed_issues(
    stack: list[Layer], merged: Mapping[str, Entry], specs: Mapping[str, FieldSpec]
) -> list[ConfigIssue]:
    """Invalid values that a higher layer overrides: still reported, since removing the override (a
    rollback, an edited env file) would bring them back. ``${...}`` values are left to the winner."""
    issues: list[ConfigIssue] = []
    for layer in stack:
        for key, entry in layer.entries.items():
            winner = merged.get(key)
            if winner is None or winner.origin == entry.origin or references(entry.value):
                continue
            if isinstance(entry.value, str) and entry.value.startswith("~"):
                continue  # expanded only for the winner
            _, issue = convert(specs[key], entry.value, entry.origin.text)
            if issue is not None:
                issues.append(
                    dataclasses.replace(
                        issue,
                        message=f"{issue.message} (overridden by {winner.origin.text}, but invalid all "
                        "the same: it applies again once that override goes)",
                    )
                )
    return issues


def _choose_settings_file(option: str | None, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(path, how it was named) - the origin is None for the default path, whose absence is fine."""
    if option is not None:
        return option, f"option --settings {option}"
    if environ.get(SETTINGS_FILE_ENV):
        return environ[SETTINGS_FILE_ENV], f"env {SETTINGS_FILE_ENV}"
    return DEFAULT_SETTINGS_FILE, None


def build_config(values: Mapping[str, object], warnings: list[ConfigIssue]) -> model.AnyonConfig:
    """The frozen config from checked values, type-checked with typeguard at this boundary."""
    from typeguard import check_type  # imported here: model users should not pay for it

    sections: dict[str, object] = {}
    for section, cls in section_classes().items():
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            value = values[f"{section}.{f.name}"]
            check_type(value, hints[f.name])
            kwargs[f.name] = value
        sections[section] = cls(**kwargs)
    config = model.AnyonConfig(**sections, warnings=tuple(w.message for w in warnings))  # type: ignore[arg-type]
    return check_type(config, model.AnyonConfig)
