"""Reading a systemd ``EnvironmentFile=`` the way systemd does, so ``validate``/``doctor`` check what the
service will really see (``--env-file /etc/anyon/anyon.env``).

The subset of systemd's rules (``systemd.exec(5)``, ``EnvironmentFile=``) followed here:

* one ``KEY=VALUE`` per line; white space around ``KEY``, and before and after an unquoted value, is
  dropped; empty lines and lines starting with ``#`` or ``;`` are comments;
* a value may be quoted: inside ``'...'`` every character is literal; inside ``"..."`` a backslash escapes
  ``"``, ``\\``, `````, ``$`` and a newline (line continuation), and is kept before anything else; quoted
  and unquoted parts join (``A="x y"z`` is ``x yz``), and a quoted value may span lines;
* outside quotes a backslash at the end of a line joins the next line; before any other character it is
  dropped and the character kept;
* ``${VAR}`` and ``$VAR`` are **not** expanded (systemd does not expand them in an EnvironmentFile);
* a line systemd would ignore (no ``=``, a key that is not a valid variable name such as
  ``export FOO=1``) is reported as a problem here, since it is always a mistake.

A variable set in the file wins over the same variable in the process environment, as the file's
variables win over ``Environment=`` lines in the unit. ``--env-file=-PATH`` (a leading ``-``, as in the
unit) names a file that may be missing.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from anyon.config.errors import ConfigIssue, make_issue
from anyon.config.redact import url_secrets

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOUBLE_ESCAPES = '"\\`$'
#: Variables whose value is a credential: model API keys for agents, tokens, passwords.
_SECRET_NAME = re.compile(r"(API_KEY|TOKEN|PASSWORD|SECRET)$")


@dataclass
class EnvFile:
    path: str
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # variable -> line where its assignment starts
    issues: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)

    def origin(self, name: str) -> str:
        return f"{self.path}:{self.lines[name]}"


def parse_env_text(text: str, path: str) -> EnvFile:
    """Every assignment of an EnvironmentFile, and every line systemd would ignore as an issue."""
    result = EnvFile(path)
    i, line, n = 0, 1, len(text)
    while i < n:
        start_line = line
        # skip leading white space and blank lines
        char = text[i]
        if char in " \t\r":
            i += 1
            continue
        if char == "\n":
            i, line = i + 1, line + 1
            continue
        if char in "#;":
            while i < n and text[i] != "\n":
                i += 1
            continue
        eq = text.find("=", i)
        newline = text.find("\n", i)
        if eq < 0 or (0 <= newline < eq):
            end = n if newline < 0 else newline
            shown = text[i:end].strip()
            result.issues.append(
                make_issue(
                    "",
                    f"{path}:{start_line}",
                    "NAME=value",
                    shown,
                    detail=f'not an assignment: "{shown}" (systemd ignores this line); write NAME=value',
                )
            )
            i = end
            continue
        name = text[i:eq].strip()
        i = eq + 1
        value: list[str] = []
        pending_space = ""  # unquoted white space, kept only if more value follows
        started = False
        while i < n:
            char = text[i]
            if char == "\n":
                break
            if char in "'\"":
                quote, i = char, i + 1
                value.append(pending_space if started else "")
                pending_space, started = "", True
                while i < n and text[i] != quote:
                    if quote == '"' and text[i] == "\\" and i + 1 < n:
                        nxt = text[i + 1]
                        if nxt == "\n":
                            line += 1
                        elif nxt in _DOUBLE_ESCAPES:
                            value.append(nxt)
                        else:
                            value.append("\\" + nxt)
                        i += 2
                        continue
                    if text[i] == "\n":
                        line += 1
                    value.append(text[i])
                    i += 1
                if i >= n:
                    result.issues.append(
                        make_issue(
                            "",
                            f"{path}:{start_line}",
                            f"a closing {quote}",
                            "end of file",
                            detail=f"{name}: unterminated {quote}-quoted value (the closing {quote} is "
                            "missing); close it on the same line",
                        )
                    )
                i += 1
                continue
            if char == "\\" and i + 1 < n:
                nxt = text[i + 1]
                i += 2
                if nxt == "\n":
                    line += 1
                    continue
                value.append(pending_space + nxt if started else nxt)
                pending_space, started = "", True
                continue
            if char in " \t\r":
                if started:
                    pending_space += char
                i += 1
                continue
            value.append(pending_space + char if started else char)
            pending_space, started = "", True
            i += 1
        if not _NAME.match(name):
            hint = (
                "drop the shell's export: systemd reads NAME=value only"
                if name.startswith("export ")
                else "a name is letters, digits and _, not starting with a digit"
            )
            result.issues.append(
                make_issue(
                    "",
                    f"{path}:{start_line}",
                    "a variable name",
                    name,
                    detail=f'"{name}" is not a variable name, so systemd ignores this line; {hint}',
                )
            )
            continue
        result.values[name] = "".join(value)
        result.lines[name] = start_line
    return result


def read_env_file(path: str) -> EnvFile:
    """Parse ``path``; a missing or unreadable file is an issue, as is a world-readable one holding a
    secret (a database password in a URL, the API token).

    As in the unit, ``-PATH`` names an optional file: a missing one is no problem.
    """
    if path.startswith("-"):
        path = path[1:]
        if not os.path.lexists(path):
            return EnvFile(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        mode = os.stat(path).st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        failed = EnvFile(path)
        failed.issues.append(
            make_issue(
                "", path, "a readable environment file", reason, detail=f"cannot read --env-file: {reason}"
            )
        )
        return failed
    result = parse_env_text(text, path)
    secrets = [
        name
        for name, value in result.values.items()
        if value and (url_secrets(value) or _SECRET_NAME.search(name))
    ]
    if secrets and mode & stat.S_IROTH:
        result.warnings.append(world_readable_secret(path, mode, secrets[0], result.origin(secrets[0])))
    return result


def world_readable_secret(path: str, mode: int, what: str, where: str) -> ConfigIssue:
    """The warning for a file any local account can read that holds a password."""
    return make_issue(
        "",
        where,
        "a file only root and the service can read",
        f"mode {stat.S_IMODE(mode):04o}",
        kind="warning",
        detail=f"{path} holds a secret ({what}) but every local account can read it "
        f"(mode {stat.S_IMODE(mode):04o}); fix: chmod 0640 {path} && chgrp anyon {path}",
    )
