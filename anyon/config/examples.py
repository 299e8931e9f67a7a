"""Examples of valid values for error messages: sizes with their unit, and a value each setting accepts.

"expected a value of at least 6291456" tells nobody what to write; "a size of at least 6 MiB, e.g. \"2g\""
does. A setting's example is its default when that is valid, written the way settings files write it.
"""

from __future__ import annotations

from anyon.config.fields import FieldSpec


def human_size(size: float | None) -> str:
    """6291456 -> "6 MiB": sizes in messages say their unit."""
    if size is None:
        return "0 bytes"
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{int(size // factor)} {unit}"
    return f"{int(size)} byte" + ("" if size == 1 else "s")


def toml_size(size: int) -> str:
    """4294967296 -> "4g", the way the settings files write sizes."""
    for suffix, factor in (("t", 1024**4), ("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size >= factor and size % factor == 0:
            return f'"{size // factor}{suffix}"'
    return str(size)


def example(spec: FieldSpec) -> str:
    """A valid value of ``spec`` as it is written in a settings file (its default when it has one)."""
    default = spec.default
    if spec.kind == "bytes":
        least = spec.bounds[0] or 0
        if isinstance(default, int) and default >= least and default > 0:
            return toml_size(default)
        return toml_size(max(int(least), 2 * 1024**3))
    if isinstance(default, bool) or default is None:
        return "true" if spec.kind == "bool" else "1"
    low, high = spec.bounds
    if isinstance(default, (int, float)) and not (
        (low is not None and default < low) or (high is not None and default > high) or default == 0
    ):
        return repr(default)
    if spec.key == "server.port":
        return "8080"
    if low is not None and low > 0:
        return fmt_bound(low) if spec.kind == "int" else repr(float(low))
    return "10" if spec.kind == "int" else "10.0"


def fmt_bound(bound: float | None) -> str:
    """A bound as people write it: 1 rather than 1.0."""
    return str(int(bound)) if bound is not None and float(bound).is_integer() else str(bound)
