"""Where a misplaced setting belongs: the hints that turn "unknown section" into "move it under [docker]".

A key written outside its section, a section nested under another one, ``[docker.cloud]`` for
``[cloud.docker]``, or ``ANYON_SERVER__MEMORY`` for ``ANYON_DOCKER__MEMORY``: each is a realistic slip,
and each hint names the place the setting belongs.
"""

from __future__ import annotations

from anyon.config.fields import keys_of, section_classes


def table_name(section: str, cloud: bool) -> str:
    """``docker`` or ``cloud.docker``: the table a section is written as."""
    return f"cloud.{section}" if cloud else section


def sections_of_key(name: str) -> list[str]:
    """The sections that have a key called ``name`` (``memory`` -> ``["docker"]``)."""
    return [s for s in section_classes() if name in keys_of(s)]


def placement_hint(name: str, body: object, cloud: bool) -> str:
    """Where a misplaced top-level name belongs: a key written outside its section, or sections
    nested under a made-up table (``[anyon.docker]``); "" when it is just unknown."""
    owners = sections_of_key(name)
    if owners:
        tables = " or ".join(f"[{table_name(s, cloud)}]" for s in owners)
        also = "" if cloud else f" ([cloud.{owners[0]}] for cloud mode only)"
        return f": it is a key of {tables}, not a section; move the line under {tables}{also}"
    if isinstance(body, dict):
        nested = [k for k in body if k in section_classes() or k == "cloud"]
        if nested:
            first = nested[0]
            return (
                f": [{name}.{first}] is not a table anyon knows; [{first}] is a top-level section, "
                f"write [{table_name(first, cloud)}] without the {name}. prefix"
            )
    return ""


def key_hint(section: str, name: str, cloud: bool) -> str:
    """Where a key unknown in ``section`` belongs: another section's key, a section, or [cloud]."""
    if name == "cloud":
        return f": [cloud] is a top-level table; write [cloud.{section}], not [{section}.cloud]"
    if name in section_classes():
        return f": [{name}] is a section of its own; write [{table_name(name, cloud)}] at the top level"
    owners = sections_of_key(name)
    if owners:
        tables = " or ".join(f"[{table_name(s, cloud)}]" for s in owners)
        return f": {name} belongs in {tables}; move it there"
    return ""


def env_hint(section: str, key: str) -> str:
    owners = sections_of_key(key)
    if not owners:
        return ""
    names = " or ".join(f"ANYON_{s.upper()}__{key.upper()}" for s in owners)
    return f": {key} belongs in [{' or '.join(owners)}]; use {names}"
