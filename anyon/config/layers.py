"""Layers of settings: flat ``{dotted key: (value, origin)}`` maps, read from TOML files and the environment.

Each value remembers where it came from so that errors and ``anyon config show --origin`` can name the
file and line, or the environment variable.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from anyon.config.errors import ConfigIssue, make_issue
from anyon.config.fields import FLAT_ENV, FieldSpec, catalogue, keys_of, section_classes
from anyon.config.placement import env_hint, key_hint, placement_hint, table_name
from anyon.config.syntax import BROKEN_TABLE, parse_toml

LayerName = Literal["default", "default-cloud", "file", "file-cloud", "env", "env-flat", "option"]
#: (path of the key inside the file, is it inside [cloud]) -> where the value came from
OriginFn = Callable[[tuple[str, ...], bool], "Origin"]


@dataclass(frozen=True)
class Origin:
    layer: LayerName
    text: str  # what people read: "default", "/etc/anyon/settings.toml:12", "env ANYON_DOCKER__MEMORY"


@dataclass(frozen=True)
class Entry:
    value: object
    origin: Origin


@dataclass
class Layer:
    name: LayerName
    entries: dict[str, Entry] = field(default_factory=dict)


@dataclass
class FileLayers:
    """What one settings file contributes: its top-level keys and its ``[cloud]`` section."""

    top: Layer
    cloud: Layer
    issues: list[ConfigIssue] = field(default_factory=list)


def suggestion(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def show_value(value: object) -> str:
    """A value as people would write it in TOML/JSON, for error messages."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


# --- TOML files ------------------------------------------------------------------------------------

_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEY_LINE = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")
_TABLE_LINE = re.compile(rf"^\s*\[\s*({_PART}(?:\s*\.\s*{_PART})*)\s*\]\s*(?:#.*)?$")
_PART_RE = re.compile(_PART)


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART_RE.findall(text))


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Line number of every key and table header in a TOML document that tomllib already accepted.

    tomllib gives values but no positions; this scanner only has to find where keys start, skipping
    the insides of multi-line strings.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _TABLE_LINE.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            continue
        match = _KEY_LINE.match(line)
        if not match:
            continue
        path = table + _split_key(match.group(1))
        lines.setdefault(path, number)
        rest = line[match.end() :]
        for quote in ('"""', "'''"):
            if rest.count(quote) % 2 == 1:
                in_multiline = quote
                break
    return lines


def read_toml_file(
    path: str, layer: LayerName, cloud_layer: LayerName, label: str | None = None
) -> FileLayers:
    """Parse one settings file into its top-level and ``[cloud]`` layers, collecting every issue.

    ``label`` replaces the path in origins (the packaged defaults are shown as ``default``).
    """
    result = FileLayers(Layer(layer), Layer(cloud_layer))
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.issues.append(
            make_issue(
                "",
                path,
                "UTF-8 text",
                f"an undecodable byte at offset {exc.start}",
                detail=f"the settings file is not UTF-8 text (byte offset {exc.start})",
            )
        )
        return result
    except OSError as exc:
        reason = exc.strerror or str(exc)
        result.issues.append(
            make_issue(
                "", path, "a readable TOML file", reason, detail=f"cannot read the settings file: {reason}"
            )
        )
        return result
    data, problems = parse_toml(text)
    for problem in problems:
        where = f"{path}:{problem.line}" if problem.line is not None else path
        column = f" (column {problem.column})" if problem.column is not None else ""
        near = f": {problem.text}" if problem.text else ""
        result.issues.append(
            make_issue(
                "",
                where,
                "valid TOML",
                problem.text,
                detail=f"malformed TOML{column}: {problem.what}{near}; fix: {problem.fix}",
            )
        )
    lines = key_lines(text)

    def origin(path_parts: tuple[str, ...], cloud: bool) -> Origin:
        line = None
        for n in range(len(path_parts), 0, -1):
            line = lines.get(path_parts[:n])
            if line is not None:
                break
        if line is None:  # a table only named through its sub-tables ([anyon.docker])
            inner = [n for k, n in lines.items() if k[: len(path_parts)] == path_parts]
            line = min(inner) if inner else None
        if label is not None:
            return Origin(cloud_layer if cloud else layer, f"{label} [cloud]" if cloud else label)
        where = f"{path}:{line}" if line is not None else path
        if cloud:
            return Origin(cloud_layer, f"[cloud] in {where}")
        return Origin(layer, where)

    _walk(data, (), False, result, origin)
    return result


def _walk(
    data: dict[str, object], prefix: tuple[str, ...], cloud: bool, result: FileLayers, origin: OriginFn
) -> None:
    sections = list(section_classes())
    allowed_sections = [s for s in sections if not (cloud and s == "deployment")]
    for section, body in data.items():
        where = (*prefix, section)
        if section.startswith(BROKEN_TABLE):
            continue  # its header is a syntax error, already reported
        if section == "cloud" and not cloud:
            if not isinstance(body, dict):
                result.issues.append(_not_atable_name("cloud", body, origin(where, False)))
                continue
            _walk(body, where, True, result, origin)
            continue
        dotted = section
        if section not in allowed_sections:
            o = origin(where, cloud)
            if cloud and section == "deployment":
                detail = "the mode cannot be set inside [cloud]; set deployment.mode at the top level"
                result.issues.append(
                    make_issue(
                        "cloud.deployment",
                        o.text,
                        "no deployment table here",
                        "[cloud.deployment]",
                        detail=detail,
                    )
                )
            else:
                choices = allowed_sections + ([] if cloud else ["cloud"])
                name = f"cloud.{section}" if cloud else section
                hint = placement_hint(section, body, cloud) or suggestion(section, choices)
                result.issues.append(
                    make_issue(
                        name,
                        o.text,
                        f"one of the sections {', '.join(choices)}",
                        f'"{section}"',
                        detail=f'unknown section "{section}"{hint}',
                    )
                )
            continue
        if not isinstance(body, dict):
            result.issues.append(_not_atable_name(dotted, body, origin(where, cloud)))
            continue
        names = keys_of(section)
        for name, value in body.items():
            key_where = (*where, name)
            o = origin(key_where, cloud)
            if name not in names:
                hint = key_hint(section, name, cloud) or suggestion(name, names)
                result.issues.append(
                    make_issue(
                        f"{section}.{name}",
                        o.text,
                        f"a key of [{section}]",
                        f'"{name}"',
                        detail=f'unknown key "{name}" in [{table_name(section, cloud)}]{hint}',
                    )
                )
                continue
            target = result.cloud if cloud else result.top
            target.entries[f"{section}.{name}"] = Entry(value, o)


def _not_atable_name(key: str, value: object, origin: Origin) -> ConfigIssue:
    return make_issue(key, origin.text, f"a table [{key}]", f"{type_name(value)} {show_value(value)}")


# --- environment -----------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_env_value(spec: FieldSpec, raw: str) -> object:
    """Turn an environment string into the value a TOML file would hold; ValueError says why not."""
    text = raw.strip()
    if spec.optional and text == "":
        return None
    if spec.kind == "int":
        return int(text)
    if spec.kind == "float":
        return float(text)
    if spec.kind == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("not a boolean")
    if spec.kind == "bytes":
        return int(text) if text.isdigit() else text
    if spec.kind == "list":
        if text.startswith("["):
            parsed = json.loads(text)
            if not isinstance(parsed, list):
                raise ValueError("not a JSON array")
            return parsed
        return [item.strip() for item in text.split(",") if item.strip()]
    return raw


_EXPECTED_ENV = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false (also 1/0, yes/no, on/off)",
    "list": "a comma-separated list or a JSON array",
}


@dataclass
class EnvLayers:
    nested: Layer
    flat: Layer
    issues: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)


def read_environment(environ: Mapping[str, str], file_origins: Mapping[str, str] | None = None) -> EnvLayers:
    """``ANYON_<SECTION>__<KEY>`` variables, then the flat names (which win).

    ``file_origins`` names the EnvironmentFile line of variables read from one (``--env-file``).
    """
    where = file_origins or {}

    def label(name: str) -> str:
        return f"env {name} ({where[name]})" if name in where else f"env {name}"

    specs = catalogue()
    result = EnvLayers(Layer("env"), Layer("env-flat"))
    sections = list(section_classes())

    def add(layer: Layer, spec: FieldSpec, name: str, raw: str) -> None:
        if spec.key == "server.port":
            raw = _ANSI.sub("", raw)
        try:
            value = parse_env_value(spec, raw)
        except ValueError:
            expected = _EXPECTED_ENV.get(spec.kind, "a value")
            result.issues.append(
                make_issue(
                    spec.key,
                    label(name),
                    expected,
                    show_value(raw),
                    detail=f"cannot parse the environment value: expected {expected}, "
                    f"found {show_value(raw)}",
                )
            )
            return
        layer.entries[spec.key] = Entry(value, Origin(layer.name, label(name)))

    for name in sorted(environ):
        if not name.startswith("ANYON_") or "__" not in name:
            continue
        section, _, key = name[len("ANYON_") :].partition("__")
        section, key = section.lower(), key.lower()
        if section not in sections:
            result.issues.append(
                make_issue(
                    f"{section}.{key}",
                    label(name),
                    "ANYON_<SECTION>__<KEY> with a known section",
                    f'"{section}"',
                    detail=f'unknown section "{section}"{suggestion(section, sections)}',
                )
            )
            continue
        names = keys_of(section)
        if key not in names:
            result.issues.append(
                make_issue(
                    f"{section}.{key}",
                    label(name),
                    f"a key of [{section}]",
                    f'"{key}"',
                    detail=f'unknown key "{key}" in [{section}]'
                    + (env_hint(section, key) or suggestion(key, names)),
                )
            )
            continue
        add(result.nested, specs[f"{section}.{key}"], name, environ[name])

    for key, flat_names in FLAT_ENV.items():
        present = [n for n in flat_names if n in environ]
        if not present:
            continue
        winner, shadowed = present[0], present[1:]
        add(result.flat, specs[key], winner, environ[winner])
        for other in shadowed:
            if environ[other] != environ[winner]:
                result.warnings.append(
                    make_issue(
                        key,
                        label(other),
                        f"the value of {winner}",
                        "a different value",
                        kind="warning",
                        detail=f"ignored because {winner} is also set and wins",
                    )
                )
    return result
