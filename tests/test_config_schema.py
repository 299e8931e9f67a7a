"""schemas/settings.schema.json, settings/defaults.toml and the typed model describe the same settings."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest

from anyon.config import model
from anyon.config.fields import BYTE_SIZES

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schemas" / "settings.schema.json").read_text())
DEFAULTS = tomllib.loads((ROOT / "settings" / "defaults.toml").read_text())


def model_sections() -> dict[str, type]:
    hints = typing.get_type_hints(model.AnyonConfig)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(model.AnyonConfig)
        if dataclasses.is_dataclass(hints[f.name])
    }


def json_type(key: str, hint: Any) -> dict[str, Any]:
    """The schema fragment a model type must have (written independently of anyon.config.fields)."""
    if isinstance(hint, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is Literal:
        return {"type": "string", "enum": list(typing.get_args(hint))}
    if typing.get_origin(hint) is tuple:
        return {"type": "array", "items": {"type": "string"}}
    if hint is int:
        return {"type": ["integer", "string"]} if key in BYTE_SIZES else {"type": "integer"}
    return {bool: {"type": "boolean"}, float: {"type": "number"}, str: {"type": "string"}}[hint]


def test_schema_and_model_have_the_same_keys_and_types() -> None:
    props = SCHEMA["properties"]
    sections = model_sections()
    assert set(props) == set(sections) | {"cloud"}
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        schema_section = props[section]
        assert schema_section["additionalProperties"] is False
        assert set(schema_section["properties"]) == set(hints), section
        for name, hint in hints.items():
            fragment = schema_section["properties"][name]
            for field, expected in json_type(f"{section}.{name}", hint).items():
                assert fragment[field] == expected, f"{section}.{name}: {field}"
    assert set(props["cloud"]["properties"]) == set(sections) - {"deployment"}


def test_defaults_file_sets_every_key_of_the_model() -> None:
    for section, cls in model_sections().items():
        assert set(DEFAULTS[section]) == {f.name for f in dataclasses.fields(cls)}, section
    assert set(DEFAULTS) == set(model_sections()) | {"cloud"}


def test_defaults_file_comments_every_key() -> None:
    lines = (ROOT / "settings" / "defaults.toml").read_text().splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert lines[number - 1].lstrip().startswith("#"), f"line {number + 1} has no comment: {line}"


def test_defaults_file_matches_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(DEFAULTS, SCHEMA)
