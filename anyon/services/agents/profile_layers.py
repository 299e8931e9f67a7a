"""The layers of executor profiles: validating ``profiles.json``, merging settings, overlaying, saving.

The effective profiles are three layers merged, lowest first (see ``executors``): the built-in defaults,
the operator's settings (merged option by option) and the user's ``profiles.json`` (a variant there
replaces the one below it; only the differences from the layers below are saved). These functions are pure
data transforms plus one atomic file write, so the merged view in ``executors`` reads as the three steps.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anyon.services.agents.profile_catalog import (
    BOOL,
    COMMON_OPTIONS,
    OPTION_TYPES,
    STR,
    STRLIST,
    ProfileError,
    canonical_executor,
    canonical_variant,
)


def parse_profiles_text(text: str) -> dict[str, dict[str, Any]]:
    """Parse and validate ``{"executors": {...}}`` text; returns the canonical ``executors`` map."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"Invalid executor profiles format: not JSON ({exc})") from exc
    try:
        return validate_profiles(data)
    except ProfileError as exc:
        raise ProfileError(f"Invalid executor profiles format: {exc}") from exc


def validate_profiles(data: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(data, Mapping) or not isinstance(data.get("executors"), Mapping):
        raise ProfileError('expected an object {"executors": {EXECUTOR: {VARIANT: {EXECUTOR: {options}}}}}')
    unknown = sorted(str(key) for key in data if key != "executors")
    if unknown:
        raise ProfileError(f"unknown top-level key(s): {', '.join(unknown)}; only 'executors' is allowed")
    out: dict[str, dict[str, Any]] = {}
    for ex_name, variants in data["executors"].items():
        executor = canonical_executor(ex_name)
        if not isinstance(variants, Mapping):
            raise ProfileError(f"executors.{ex_name} must be an object of variants")
        for var_name, config in variants.items():
            variant = canonical_variant(var_name)
            where = f"executors.{executor}.{variant}"
            if not isinstance(config, Mapping) or len(config) != 1:
                raise ProfileError(f"{where} must be an object with the single key {executor}")
            ((tag, opts),) = config.items()
            if canonical_executor(tag) != executor:
                raise ProfileError(f"{where} is tagged {tag!r}; expected {executor}")
            out.setdefault(executor, {})[variant] = {executor: validate_options(executor, opts, where)}
    return out


def validate_options(executor: str, opts: Any, where: str) -> dict[str, Any]:
    if not isinstance(opts, Mapping):
        raise ProfileError(f"{where}.{executor} must be an object of options")
    allowed = {**COMMON_OPTIONS, **OPTION_TYPES[executor]}
    clean: dict[str, Any] = {"append_prompt": None}
    for key, value in opts.items():
        if key not in allowed:
            raise ProfileError(
                f"{where}.{executor}: unknown option {key!r}; allowed: {', '.join(sorted(allowed))}"
            )
        if value is None:
            if executor == "GEMINI" and key == "model":
                raise ProfileError(f"{where}.GEMINI.model is required: 'default' or 'flash'")
            if key == "append_prompt":
                clean[key] = None
            continue
        kind = allowed[key]
        ok = (
            (kind == STR and isinstance(value, str))
            or (kind == BOOL and isinstance(value, bool))
            or (kind == STRLIST and isinstance(value, list) and all(isinstance(v, str) for v in value))
            or (isinstance(kind, tuple) and value in kind)
        )
        if not ok:
            expected = f"one of {', '.join(kind)}" if isinstance(kind, tuple) else f"a {kind}"
            raise ProfileError(f"{where}.{executor}.{key} must be {expected}, not {value!r}")
        clean[key] = value
    if executor == "GEMINI" and "model" not in clean:
        raise ProfileError(f"{where}.GEMINI.model is required: 'default' or 'flash'")
    return clean


def merge_settings(
    base: dict[str, dict[str, Any]], overrides: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Layer 2: ``{EXECUTOR: {VARIANT: {options}}}`` from settings, merged option by option."""
    for ex_name, variants in overrides.items():
        executor = canonical_executor(ex_name)
        if not isinstance(variants, Mapping):
            raise ProfileError(f"settings executors.{ex_name} must be a table of variants")
        for var_name, opts in variants.items():
            variant = canonical_variant(var_name)
            where = f"settings executors.{executor}.{variant}"
            if isinstance(opts, Mapping) and len(opts) == 1 and executor in opts:
                opts = opts[executor]  # the tagged form is accepted too
            if not isinstance(opts, Mapping):
                raise ProfileError(f"{where} must be a table of options")
            current = base.get(executor, {}).get(variant, {executor: {}})[executor]
            given = {k: v for k, v in opts.items()}
            merged = {**current, **given}
            if executor == "GEMINI" and "model" not in merged:
                merged["model"] = "default"
            base.setdefault(executor, {})[variant] = {executor: validate_options(executor, merged, where)}
    return base


def overlay(base: dict[str, dict[str, Any]], user: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = copy.deepcopy(base)
    for executor, variants in user.items():
        for variant, config in variants.items():
            merged.setdefault(executor, {})[variant] = copy.deepcopy(config)
    return merged


def difference(full: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    diff: dict[str, dict[str, Any]] = {}
    for executor, variants in full.items():
        for variant, config in variants.items():
            if base.get(executor, {}).get(variant) != config:
                diff.setdefault(executor, {})[variant] = config
    return diff


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
