"""The UI's own settings (``Config`` v7 of types.md §2), kept in ``<data_dir>/config.json``.

This is not the server configuration (that is :mod:`anyon.config`): it is what the web UI reads
from ``/api/info`` and saves with ``PUT /api/config`` — theme, onboarding flags, the default
executor profile, the branch prefix. GitHub tokens sent in it are moved to the secret file and
never echoed back.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from anyon.services.errors import ServiceError

log = logging.getLogger(__name__)

DEFAULT_CONFIG: dict[str, Any] = {
    "config_version": "v7",
    "theme": "SYSTEM",
    "executor_profile": {"executor": "CLAUDE_CODE"},
    "disclaimer_acknowledged": False,
    "onboarding_acknowledged": False,
    "github_login_acknowledged": False,
    "telemetry_acknowledged": False,
    "notifications": {"sound_enabled": True, "push_enabled": True, "sound_file": "COW_MOOING"},
    "editor": {
        "editor_type": "VS_CODE",
        "custom_command": None,
        "remote_ssh_host": None,
        "remote_ssh_user": None,
    },
    "github": {
        "pat": None,
        "oauth_token": None,
        "username": None,
        "primary_email": None,
        "default_pr_base": "main",
    },
    "analytics_enabled": None,
    "workspace_dir": None,
    "last_app_version": None,
    "show_release_notes": False,
    "language": "BROWSER",
    "git_branch_prefix": "vk",
    "showcases": {"seen_features": []},
}

THEMES = ("LIGHT", "DARK", "SYSTEM")
LANGUAGES = ("BROWSER", "EN", "JA", "ES", "KO")
SOUND_FILES = (
    "ABSTRACT_SOUND1",
    "ABSTRACT_SOUND2",
    "ABSTRACT_SOUND3",
    "ABSTRACT_SOUND4",
    "COW_MOOING",
    "PHONE_VIBRATION",
    "ROOSTER",
)
EDITOR_TYPES = ("VS_CODE", "CURSOR", "WINDSURF", "INTELLI_J", "ZED", "XCODE", "CUSTOM")
DEV_LOGIN_TOKEN = "dev-login-placeholder-token"
_BRANCH_PREFIX_MESSAGE = (
    "Invalid git branch prefix. Must be a valid git branch name component without slashes."
)
# git check-ref-format rules for one component (no slash allowed in the prefix itself)
_BAD_REF = re.compile(r"(\.\.|[\x00-\x20\x7f~^:?*\[\\]|@\{|^\.|\.$|\.lock$|^-|^@$)")

# field -> (kind, allowed values or nested spec, nullable)
_SCHEMA: dict[str, Any] = {
    "config_version": ("str", None, False),
    "theme": ("enum", THEMES, False),
    "executor_profile": ("object", {"executor": ("str", None, False), "variant": ("str", None, True)}, False),
    "disclaimer_acknowledged": ("bool", None, False),
    "onboarding_acknowledged": ("bool", None, False),
    "github_login_acknowledged": ("bool", None, False),
    "telemetry_acknowledged": ("bool", None, False),
    "notifications": (
        "object",
        {
            "sound_enabled": ("bool", None, False),
            "push_enabled": ("bool", None, False),
            "sound_file": ("enum", SOUND_FILES, False),
        },
        False,
    ),
    "editor": (
        "object",
        {
            "editor_type": ("enum", EDITOR_TYPES, False),
            "custom_command": ("str", None, True),
            "remote_ssh_host": ("str", None, True),
            "remote_ssh_user": ("str", None, True),
        },
        False,
    ),
    "github": (
        "object",
        {
            "pat": ("str", None, True),
            "oauth_token": ("str", None, True),
            "username": ("str", None, True),
            "primary_email": ("str", None, True),
            "default_pr_base": ("str", None, True),
        },
        False,
    ),
    "analytics_enabled": ("bool", None, True),
    "workspace_dir": ("str", None, True),
    "last_app_version": ("str", None, True),
    "show_release_notes": ("bool", None, False),
    "language": ("enum", LANGUAGES, False),
    "git_branch_prefix": ("str", None, False),
    "showcases": ("object", {"seen_features": ("list[str]", None, False)}, False),
}
_DEFAULTED_ON_INPUT = {"language", "git_branch_prefix", "showcases"}
_REQUIRED_SUBFIELDS_OPTIONAL = {
    ("editor", "remote_ssh_host"),
    ("editor", "remote_ssh_user"),
    ("executor_profile", "variant"),
}


_NO_NUL = "^[^\\x00]*$"  # the API refuses NUL in every string of a body


def _json_schema(spec: tuple[str, Any, bool], where: str) -> dict[str, Any]:
    kind, extra, nullable = spec
    schema: dict[str, Any]
    if kind == "enum":
        schema = {"enum": [*extra, None] if nullable else list(extra)}
        return schema
    if kind == "object":
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: _json_schema(sub, f"{where}.{name}") for name, sub in extra.items()},
            "required": [
                name
                for name, sub in extra.items()
                if not sub[2] and (where, name) not in _REQUIRED_SUBFIELDS_OPTIONAL
            ],
        }
    elif kind == "list[str]":
        schema = {"type": "array", "items": {"type": "string", "pattern": _NO_NUL}}
    elif kind == "str":
        schema = {"type": "string", "pattern": _NO_NUL}
    else:
        schema = {"type": "boolean"}
    if nullable:
        schema["type"] = [schema["type"], "null"]
    return schema


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a ``PUT /api/config`` body, derived from the table ``validate_config_body`` uses."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: _json_schema(spec, name) for name, spec in _SCHEMA.items()},
        "required": [
            name for name, spec in _SCHEMA.items() if name not in _DEFAULTED_ON_INPUT and not spec[2]
        ],
    }


def valid_branch_prefix(prefix: str) -> bool:
    return prefix == "" or ("/" not in prefix and not _BAD_REF.search(prefix))


def _check(value: Any, spec: tuple[str, Any, bool], where: str, problems: list[str]) -> None:
    kind, extra, nullable = spec
    if value is None:
        if not nullable:
            problems.append(f"`{where}` may not be null")
        return
    if kind == "str" and not isinstance(value, str):
        problems.append(f"`{where}` must be a string")
    elif kind == "bool" and not isinstance(value, bool):
        problems.append(f"`{where}` must be a boolean")
    elif kind == "enum" and value not in extra:
        problems.append(f"`{where}` must be one of {', '.join(extra)}, got {value!r}")
    elif kind == "list[str]" and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        problems.append(f"`{where}` must be a list of strings")
    elif kind == "object":
        if not isinstance(value, dict):
            problems.append(f"`{where}` must be an object")
            return
        unknown = sorted(set(value) - set(extra))
        if unknown:
            problems.append(f"unknown field(s) in `{where}`: {', '.join(unknown)}")
        for name, sub in extra.items():
            if name not in value:
                if (where, name) not in _REQUIRED_SUBFIELDS_OPTIONAL and not sub[2]:
                    problems.append(f"missing field `{where}.{name}`")
                continue
            _check(value[name], sub, f"{where}.{name}", problems)


def validate_config_body(body: Any) -> list[str]:
    """Every problem of a ``PUT /api/config`` body, as sentences naming the field (empty = valid)."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object (a full Config)"]
    problems: list[str] = []
    unknown = sorted(set(body) - set(_SCHEMA))
    if unknown:
        problems.append(f"unknown field(s): {', '.join(unknown)}")
    for name, spec in _SCHEMA.items():
        if name not in body:
            if name not in _DEFAULTED_ON_INPUT and not spec[2]:
                problems.append(f"missing field `{name}`")
            continue
        _check(body[name], spec, name, problems)
    return problems


class UserConfigService:
    """Loads, validates and atomically saves the UI config, and holds the GitHub/Claude secret states."""

    def __init__(self, data_dir: str) -> None:
        self._path = Path(data_dir) / "config.json"
        self._secrets_path = Path(data_dir) / "secrets.json"
        self._lock = threading.Lock()
        self._config = self._load()

    @property
    def path(self) -> str:
        return str(self._path)

    def _load(self) -> dict[str, Any]:
        config = copy.deepcopy(DEFAULT_CONFIG)
        try:
            stored = json.loads(self._path.read_text())
        except FileNotFoundError:
            return config
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable UI config %s: %s", self._path, exc)
            return config
        if (
            not isinstance(stored, dict)
            or stored.get("config_version") != "v7"
            or validate_config_body(stored)
        ):
            log.warning("UI config %s is not a valid v7 config; using defaults", self._path)
            return config
        config.update(stored)
        return config

    def get(self) -> dict[str, Any]:
        """The config as the UI sees it: tokens always null."""
        with self._lock:
            public = copy.deepcopy(self._config)
        public["github"]["pat"] = None
        public["github"]["oauth_token"] = None
        return public

    def _write_atomic(self, path: Path, payload: dict[str, Any], mode: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w") as handle:
                json.dump(payload, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _secrets(self) -> dict[str, str]:
        try:
            data = json.loads(self._secrets_path.read_text())
            return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def secret(self, name: str) -> str | None:
        with self._lock:
            return self._secrets().get(name)

    def secret_of(self, user_id: str | None, name: str) -> str | None:
        """``name`` from ``user_id``'s own store; a single-user store has only one (cloud accounts:
        user_scoped_config.py). Used by work no request started, such as the PR monitor."""
        return self.secret(name)

    def secret_states(self) -> dict[str, Any]:
        with self._lock:
            secrets = self._secrets()
        return {
            "github_secret_state": {
                "has_oauth_token": "github.oauth_token" in secrets,
                "has_pat": "github.pat" in secrets,
            },
            "claude_secret_state": {"has_credentials": "claude.access_token" in secrets},
        }

    def _update_secrets(self, changes: dict[str, str | None]) -> None:
        secrets = self._secrets()
        for name, value in changes.items():
            if value is None:
                continue
            if value.strip():
                secrets[name] = value
            else:
                secrets.pop(name, None)
        self._write_atomic(self._secrets_path, secrets, 0o600)

    def save(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and persist a full Config; returns the saved config (tokens null)."""
        problems = validate_config_body(body)
        if problems:
            raise ServiceError("Invalid config: " + "; ".join(problems))
        prefix = body.get("git_branch_prefix", "vk")
        if not valid_branch_prefix(prefix):
            raise ServiceError(_BRANCH_PREFIX_MESSAGE)
        new = copy.deepcopy(DEFAULT_CONFIG)
        new.update(copy.deepcopy(body))
        new["config_version"] = "v7"
        github = dict(new["github"])
        secret_changes = {"github.pat": github.get("pat"), "github.oauth_token": github.get("oauth_token")}
        github["pat"] = None
        github["oauth_token"] = None
        new["github"] = github
        with self._lock:
            if any(v is not None for v in secret_changes.values()):
                self._update_secrets(secret_changes)
            self._write_atomic(self._path, new, 0o640)
            self._config = new
        return self.get()

    def dev_login(self) -> None:
        """``POST /api/auth/dev-login``: the UI's onboarding login without GitHub."""
        with self._lock:
            new = copy.deepcopy(self._config)
            new["github"] = {**new["github"], "username": "Dev User", "primary_email": "dev@localhost"}
            new["github_login_acknowledged"] = True
            self._update_secrets({"github.oauth_token": DEV_LOGIN_TOKEN})
            self._write_atomic(self._path, new, 0o640)
            self._config = new

    def github_login(self, token: str, username: str | None, email: str | None) -> None:
        """Device-flow success: keep the OAuth token (0600 secrets file) and who signed in."""
        with self._lock:
            new = copy.deepcopy(self._config)
            new["github"] = {**new["github"], "username": username, "primary_email": email}
            new["github_login_acknowledged"] = True
            self._update_secrets({"github.oauth_token": token})
            self._write_atomic(self._path, new, 0o640)
            self._config = new
