"""Merging the layers with dynaconf's merge while remembering which layer won each key.

Each layer becomes a nested ``{section: {key: value}}`` table merged over the previous result with
dynaconf's ``object_merge``: a later layer replaces single keys and keeps their siblings. Lists are
merged "shallow" (a later list replaces the earlier one instead of being appended to it), which is what
people expect from ``CORS_ALLOWED_ORIGINS=…`` overriding a file. The winning layer of every leaf is
tracked alongside, for errors and ``config show --origin``.

A full ``Dynaconf`` settings object is not built: its loaders would read files and environment
variables we have already read (with positions), and it costs tens of milliseconds per run.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

from anyon.config.layers import Entry, Layer

# dynaconf's package __init__ imports its Flask and Django integrations, which pull in flask,
# werkzeug and jinja2 when they happen to be installed (about 100 ms). anyon uses neither integration
# nor @jinja values, and `anyon config validate` runs in ExecStartPre, so those imports are skipped.
_SKIPPED_IMPORTS = ("flask", "jinja2", "django")


def _object_merge() -> Callable[..., Any]:
    if "dynaconf" not in sys.modules:
        added = [name for name in _SKIPPED_IMPORTS if name not in sys.modules]
        for name in added:
            sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
        try:
            import dynaconf  # noqa: F401
        finally:
            for name in added:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
    from dynaconf.utils import object_merge

    return object_merge  # type: ignore[no-any-return]


def merge_layers(layers: list[Layer]) -> dict[str, Entry]:
    """Merged value and winning origin of every key set in any layer (later layers win)."""
    object_merge = _object_merge()
    merged: dict[str, Any] = {}
    winners: dict[str, Entry] = {}
    for layer in layers:
        table: dict[str, dict[str, Any]] = {}
        for key, entry in layer.entries.items():
            section, _, name = key.partition(".")
            table.setdefault(section, {})[name] = copy.deepcopy(entry.value)
            winners[key] = entry
        merged = object_merge(merged, table, list_merge="shallow")
    result: dict[str, Entry] = {}
    for key, entry in winners.items():
        section, _, name = key.partition(".")
        result[key] = Entry(merged[section][name], entry.origin)
    return result
