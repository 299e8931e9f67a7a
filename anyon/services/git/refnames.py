"""Branch names: git's own ``check-ref-format --branch`` rules, as one pure function.

Every place a branch name enters the server (attempt base and target branches, rebase, rename, the
change of target) checks it here first, so a name libgit2 or the git CLI would choke on is refused
with a message that says which rule it breaks, instead of surfacing later as an internal error.

The rules are those of ``git check-ref-format`` for ``refs/heads/<name>`` plus what ``git branch``
adds (no leading ``-``, not ``HEAD``). Two limits are ours: a full ref such as ``refs/heads/x`` is
refused (the API takes short names; git would create ``refs/heads/refs/heads/x``), and a name may be
at most :data:`MAX_BRANCH_BYTES` bytes with components of at most :data:`MAX_COMPONENT_BYTES` bytes,
because loose refs are files and no file system stores a longer file name.
"""

from __future__ import annotations

MAX_COMPONENT_BYTES = 255
MAX_BRANCH_BYTES = 1000

_FORBIDDEN = {
    " ": "a space",
    "~": "'~'",
    "^": "'^'",
    ":": "':'",
    "?": "'?'",
    "*": "'*'",
    "[": "'['",
    "\\": "'\\'",
}


class InvalidRefName(ValueError):
    """A branch name git would refuse; the message names the rule that was broken."""


def branch_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid branch name, or None when it is."""
    if not isinstance(name, str):
        return "a branch name must be a string"
    if not name:
        return "a branch name cannot be empty"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "a branch name must be valid Unicode text"
    if size > MAX_BRANCH_BYTES:
        return f"a branch name can be at most {MAX_BRANCH_BYTES} bytes long (this one has {size})"
    for ch in name:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return "a branch name cannot contain control characters"
        if ch in _FORBIDDEN:
            return f"a branch name cannot contain {_FORBIDDEN[ch]}"
    if name.startswith("-"):
        return "a branch name cannot start with '-'"
    if name in ("HEAD", "@"):
        return f"'{name}' is reserved and cannot be a branch name"
    if name == "refs" or name.startswith("refs/"):
        return "give the short branch name, not a full ref (for 'refs/heads/x' write 'x')"
    if ".." in name:
        return "a branch name cannot contain '..'"
    if "@{" in name:
        return "a branch name cannot contain '@{'"
    if name.startswith("/") or name.endswith("/"):
        return "a branch name cannot start or end with '/'"
    if "//" in name:
        return "a branch name cannot contain '//'"
    if name.endswith("."):
        return "a branch name cannot end with '.'"
    for component in name.split("/"):
        if component.startswith("."):
            return "no part of a branch name between slashes can start with '.'"
        if component.endswith(".lock"):
            return "no part of a branch name between slashes can end with '.lock'"
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return (
                f"each part of a branch name between slashes can be at most {MAX_COMPONENT_BYTES} bytes long"
            )
    return None


def check_branch_name(name: object) -> str:
    """``name`` when git accepts it as a branch name; else :class:`InvalidRefName` saying why."""
    problem = branch_name_problem(name)
    if problem is not None:
        raise InvalidRefName(f"Invalid branch name: {problem}")
    assert isinstance(name, str)
    return name
