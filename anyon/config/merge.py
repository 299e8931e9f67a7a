"""Merging the layers with dynaconf while remembering which layer won each key.

dynaconf merges nested tables (a later layer replaces single keys and keeps their siblings); we feed it
one leaf at a time, so a list in a later layer replaces the earlier list instead of being appended to
it. The winning layer of every leaf is tracked alongside, for errors and ``config show --origin``.
"""

from __future__ import annotations

import sys
from typing import Any

from anyon.config.layers import Entry, Layer

# dynaconf's package __init__ imports its Flask and Django integrations, which pull in flask,
# werkzeug and jinja2 when they happen to be installed (about 100 ms). anyon uses neither integration
# nor @jinja values, and `anyon config validate` runs in ExecStartPre, so those imports are skipped.
_SKIPPED_IMPORTS = ("flask", "jinja2", "django")


def _import_dynaconf() -> Any:
    if "dynaconf" in sys.modules:
        return sys.modules["dynaconf"].Dynaconf
    added = [name for name in _SKIPPED_IMPORTS if name not in sys.modules]
    for name in added:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        from dynaconf import Dynaconf
    finally:
        for name in added:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return Dynaconf


def merge_layers(layers: list[Layer]) -> dict[str, Entry]:
    """Merged value and winning origin of every key set in any layer (later layers win)."""
    dynaconf = _import_dynaconf()
    settings = dynaconf(
        settings_files=[],
        environments=False,
        load_dotenv=False,
        envvar_prefix="ANYON_NOT_READ_BY_DYNACONF",
        loaders=[],
        merge_enabled=False,
    )
    winners: dict[str, Entry] = {}
    for layer in layers:
        for key, entry in layer.entries.items():
            settings.set(key, entry.value)
            winners[key] = entry
    merged = {str(k).lower(): v for k, v in settings.as_dict().items()}
    result: dict[str, Entry] = {}
    for key, entry in winners.items():
        section, _, name = key.partition(".")
        value = merged.get(section, {}).get(name, entry.value)
        result[key] = Entry(_plain(value), entry.origin)
    return result


def _plain(value: object) -> object:
    """dynaconf's list/dict wrappers back to plain Python objects."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
