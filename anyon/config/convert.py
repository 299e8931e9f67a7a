"""Turning merged raw values into typed ones: ``${...}`` and ``~`` expansion, then one value at a time.

Every function returns issues instead of raising, so one run reports every problem. The checks that
span several keys come after this, in :mod:`anyon.config.semantics`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from anyon.config.errors import ConfigIssue, make_issue
from anyon.config.examples import example, fmt_bound, human_size
from anyon.config.fields import FieldSpec
from anyon.config.layers import Entry, show_value, type_name
from anyon.config.redact import redact_url

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def parse_size(text: str) -> int:
    """``"2g"`` -> 2 GiB, ``"512m"`` -> 512 MiB (binary units, as Docker reads them)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def display(spec: FieldSpec, value: object) -> str:
    if spec.is_secret and isinstance(value, str):
        return show_value(redact_url(value))
    return show_value(value)


# --- placeholders ----------------------------------------------------------------------------------


def references(value: object) -> list[str]:
    """The ``${...}`` names a raw value refers to."""
    return _PLACEHOLDER.findall(value) if isinstance(value, str) else []


def expand_strings(
    merged: dict[str, Entry], specs: Mapping[str, FieldSpec], environ: Mapping[str, str]
) -> tuple[dict[str, object], list[ConfigIssue]]:
    """Resolve ``~`` and ``${...}`` in string settings; returns the values and the problems."""
    home = environ.get("HOME") or os.path.expanduser("~")
    xdg = environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(xdg):  # the XDG spec: relative values are ignored
        xdg = os.path.join(home, ".local", "share")
    values: dict[str, object] = {k: e.value for k, e in merged.items()}
    issues: list[ConfigIssue] = []
    done: set[str] = set()

    def resolve(key: str, stack: tuple[str, ...]) -> str | None:
        raw = values[key]
        if key in done or not isinstance(raw, str):
            return raw if isinstance(raw, str) else None
        origin = merged[key].origin.text

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "XDG_DATA_HOME":
                return xdg
            if name == "HOME":
                return home
            ref = specs.get(name)
            if ref is None or ref.kind != "str" or name not in values:
                raise _Bad(
                    f'unknown reference "${{{name}}}"; use ${{<section>.<key>}} of a string '
                    "setting, ${HOME} or ${XDG_DATA_HOME}"
                )
            if name in stack:
                raise _Bad("circular reference: " + " -> ".join((*stack, name)))
            resolved = resolve(name, (*stack, name))
            if resolved is None:
                raise _Silent  # the referenced setting's own problem is reported for it
            return resolved

        try:
            text = _PLACEHOLDER.sub(substitute, raw)
        except _Silent:
            values[key] = None
            done.add(key)
            return None
        except _Bad as bad:
            issues.append(make_issue(key, origin, "a resolvable value", show_value(raw), detail=str(bad)))
            values[key] = None
            done.add(key)
            return None
        if text == "~" or text.startswith("~/"):
            text = home + text[1:]
        values[key] = text
        done.add(key)
        return text

    for key, spec in specs.items():
        if key in values and spec.kind == "str":
            resolve(key, (key,))
    return values, issues


class _Bad(Exception):
    pass


class _Silent(Exception):
    pass


# --- one value -------------------------------------------------------------------------------------


def convert(spec: FieldSpec, value: object, origin: str) -> tuple[object, ConfigIssue | None]:
    """The typed value for one setting, or the issue explaining why there is none."""

    def bad(expected: str, detail: str = "") -> tuple[object, ConfigIssue]:
        found = f"{type_name(value)} {display(spec, value)}"
        return None, make_issue(spec.key, origin, expected, found, detail=detail)

    if value is None or (spec.optional and value == ""):
        if spec.optional:
            return None, None
        if value is None:  # only reached when a ${...} reference failed: already reported
            return None, None
        return bad("a non-empty string")
    kind = spec.kind
    if kind == "str":
        if not isinstance(value, str):
            return bad("an absolute path" if spec.is_path else "a string")
        if value == "":
            return bad("a non-empty string")
        if spec.is_path and not os.path.isabs(value):
            return bad("an absolute path")
        return value, None
    if kind == "choice":
        if isinstance(value, str):
            candidate = value.upper() if spec.choices and spec.choices[0].isupper() else value
            if candidate in spec.choices:
                return candidate, None
        return bad("one of " + ", ".join(f'"{c}"' for c in spec.choices))
    if kind == "bool":
        return (value, None) if isinstance(value, bool) else bad("a boolean (true or false)")
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return bad("an array of strings")
        if spec.is_path_list:
            relative = [v for v in value if not os.path.isabs(v)]
            if relative:
                return bad("an array of absolute paths")
        return tuple(value), None
    number: int | float
    if kind == "bytes":
        expected = 'a size: a number of bytes, or a string such as "512m" or "2g" (k/m/g/t = KiB/MiB/GiB/TiB)'
        if isinstance(value, bool):
            return bad(expected)
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            try:
                number = parse_size(value)
            except ValueError:
                return bad(expected)
        else:
            return bad(expected)
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return bad(f"an integer, e.g. {example(spec)}")
        number = value
    else:  # float
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad(f"a number, e.g. {example(spec)}")
        number = float(value)
    low, high = spec.bounds
    if (low is not None and number < low) or (high is not None and number > high):
        if kind == "bytes":
            unit = " (a bare number counts bytes)" if isinstance(value, int) else ""
            meant = f'"{value}g"' if isinstance(value, int) and 0 < value < 1024 else example(spec)
            if high is None:
                return bad(f"a size of at least {human_size(low)}, e.g. {meant}{unit}")
            return bad(f"a size from {human_size(low)} to {human_size(high)}, e.g. {example(spec)}{unit}")
        if high is None:
            return bad(f"a value of at least {fmt_bound(low)}, e.g. {example(spec)}")
        return bad(f"a value from {fmt_bound(low)} to {fmt_bound(high)}, e.g. {example(spec)}")
    return number, None
