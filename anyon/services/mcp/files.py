"""Read and replace the servers object of an agent's config file, keeping everything else in it.

JSON files are parsed and rewritten with their other keys (and key order) intact. Codex's TOML goes
through tomlkit, which round-trips comments, ordering and formatting, so a user's hand-written
``config.toml`` loses nothing but the ``[mcp_servers]`` tables it asked to replace. Writes are atomic
(a temporary file in the same directory, fsynced, renamed over the old one, its mode kept) and a file
that does not parse is never overwritten: the caller gets a clear soft error naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable
from typing import Any

import tomlkit
import tomlkit.exceptions

from anyon.services.agents.profile_catalog import EXECUTORS, UnknownExecutorError, canonical_executor
from anyon.services.errors import ServiceError
from anyon.services.mcp.catalogue import dialect, preconfigured
from anyon.services.mcp.locations import mcp_config_path

#: A config file larger than this is not an MCP settings file we should rewrite.
MAX_CONFIG_BYTES = 4 * 1024**2


class McpConfigService:
    """``follow_links``: locally the home is the user's own (a dotfiles symlink is written through, as
    the user meant); in cloud mode the agents' home is theirs to write, so a link there is never followed
    for reading nor writing (THREAT-MODEL rule 3).

    ``agent_home`` is the home itself or, in cloud mode with accounts, a callable naming the acting
    account's home (agents/agent_home.py), so each account reads and writes its own agents' MCP servers."""

    def __init__(self, agent_home: str | Callable[[], str], *, follow_links: bool) -> None:
        self._home = agent_home if callable(agent_home) else (lambda: agent_home)
        self._follow = follow_links

    def _target(self, executor: str) -> tuple[str, str]:
        try:
            name = canonical_executor(executor)
        except UnknownExecutorError:
            raise ServiceError(
                f"Unknown executor {executor[:64]!r}: expected one of {', '.join(EXECUTORS)}"
            ) from None
        path = mcp_config_path(name, self._home())
        if path is None:
            raise ServiceError("MCP not supported by this executor")
        return name, path

    def _read(self, path: str, is_toml: bool) -> Any:
        """The parsed file, or None when it does not exist; a soft error when it cannot be used."""
        # O_NONBLOCK: a FIFO planted at the path must not hang the server; only a regular file is read
        flags = os.O_RDONLY | os.O_NONBLOCK | (0 if self._follow else os.O_NOFOLLOW)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ServiceError(
                    f"The MCP config path {path} is a symbolic link; not following it"
                ) from None
            raise ServiceError(f"Cannot read the MCP config file {path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ServiceError(f"The MCP config path {path} is not a regular file")
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ServiceError(f"The MCP config file {path} is larger than {MAX_CONFIG_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
            document: Any = tomlkit.parse(text) if is_toml else (json.loads(text) if text.strip() else {})
        except (UnicodeDecodeError, ValueError, tomlkit.exceptions.TOMLKitError) as exc:
            kind = "TOML" if is_toml else "JSON"
            raise ServiceError(
                f"The MCP config file {path} is not valid {kind} ({exc}); "
                "fix or remove it (it was left unchanged)"
            ) from None
        if not isinstance(document, dict):
            raise ServiceError(f"The MCP config file {path} does not hold an object at its top level")
        return document

    def get(self, executor: str) -> dict[str, Any]:
        """``GET /api/mcp-config``: the servers in the agent's file, and the contract's constants."""
        name, path = self._target(executor)
        shape = dialect(name)
        document = self._read(path, shape.is_toml)
        servers: Any = document if document is not None else shape.template
        for key in shape.servers_path:
            servers = servers.get(key) if isinstance(servers, dict) else None
        if not isinstance(servers, dict):
            servers = {}
        return {
            "mcp_config": {
                "servers": _plain(servers),
                "servers_path": list(shape.servers_path),
                "template": shape.template,
                "preconfigured": preconfigured(name),
                "is_toml_config": shape.is_toml,
            },
            "config_path": path,
        }

    def replace(self, executor: str, servers: dict[str, Any]) -> str:
        """``POST /api/mcp-config``: the servers object becomes ``servers``; the rest of the file stays."""
        name, path = self._target(executor)
        if self._follow:
            path = os.path.realpath(path)
        shape = dialect(name)
        if not all(isinstance(v, dict) for v in servers.values()):
            raise ServiceError("Each MCP server must be a JSON object")
        document = self._read(path, shape.is_toml)
        before = 0
        if document is None:
            document = tomlkit.document() if shape.is_toml else json.loads(json.dumps(shape.template))
            if shape.is_toml:
                document.update(shape.template)
        holder: Any = document
        for key in shape.servers_path[:-1]:
            if not isinstance(holder.get(key), dict):
                holder[key] = {}
            holder = holder[key]
        last = shape.servers_path[-1]
        if isinstance(holder.get(last), dict):
            before = len(holder[last])
        if shape.is_toml:
            try:
                holder[last] = tomlkit.item(servers)
            except (ValueError, TypeError, tomlkit.exceptions.TOMLKitError) as exc:
                raise ServiceError(f"These MCP servers cannot be written as TOML: {exc}") from None
            text = tomlkit.dumps(document)
        else:
            holder[last] = servers
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        _write_atomic(path, text.encode("utf-8"))
        return _summary(before, len(servers))


def _plain(value: Any) -> Any:
    """tomlkit containers as plain JSON values."""
    return json.loads(json.dumps(value, default=str))


def _summary(before: int, after: int) -> str:
    if after == 0:
        return "No MCP servers configured"
    if before == 0:
        return f"Added {after} MCP server(s)"
    if before == after:
        return f"Updated MCP server configuration ({after} server(s))"
    return f"Updated MCP server configuration (was {before}, now {after})"


def _write_atomic(path: str, data: bytes) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        mode = 0o600  # agent config files hold tokens and headers: private by default
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
