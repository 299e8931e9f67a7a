"""Executor profiles: which coding agents exist, their variants, and the command line each one runs.

A profile is ``executors.<EXECUTOR>.<VARIANT> = {<EXECUTOR>: {options}}`` (spec anyon-api.md §5.1,
types.md §4). The effective profiles are three layers merged, lowest first:

1. the built-in defaults (``profile_catalog``, types.md §4.5);
2. the operator's settings, ``[executors.<EXECUTOR>.<VARIANT>]`` (options merged key by key, so an operator
   can set just ``base_command_override`` without losing the variant's other options);
3. the user's ``<data_dir>/profiles.json``, written by ``PUT /api/profiles`` (a variant present there
   replaces the variant below it, as in the reference; only the differences from layers 1+2 are saved).

The pieces live beside this module: the catalogue of executors, options, built-in variants and the
profile id (``profile_catalog``), the per-agent command lines (``agent_commands``) and the validation and
merging of the layers (``profile_layers``). This module is the merged view the services hold.

The prompt always goes over stdin (spec §5.1): :meth:`ExecutorProfiles.build_command` says so, and
:meth:`ExecutorProfiles.stdin_payload` gives the bytes to write.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anyon.services.agents.agent_commands import BASE_COMMANDS, Command, command_parts
from anyon.services.agents.profile_catalog import (
    BUILTIN_PROFILES,
    CAPABILITIES,
    ExecutorProfileId,
    ProfileError,
    UnknownExecutorError,
    UnknownVariantError,
    canonical_executor,
    canonical_variant,
)
from anyon.services.agents.profile_layers import (
    atomic_write,
    difference,
    merge_settings,
    overlay,
    parse_profiles_text,
)


class ExecutorProfiles:
    """The merged profiles, their persistence in ``profiles.json``, and command building."""

    def __init__(
        self,
        *,
        profiles_path: str | Path | None = None,
        settings_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.profiles_path = Path(profiles_path) if profiles_path is not None else None
        self._base = merge_settings(copy.deepcopy(BUILTIN_PROFILES), settings_overrides or {})
        self._user: dict[str, dict[str, Any]] = {}
        self._merged: dict[str, dict[str, Any]] = copy.deepcopy(self._base)
        self.load_error: str | None = None
        self.reload()

    # --- loading and saving --------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read ``profiles.json``. A broken file keeps the defaults and records ``load_error``."""
        self.load_error = None
        self._user = {}
        if self.profiles_path is not None and self.profiles_path.exists():
            try:
                text = self.profiles_path.read_text(encoding="utf-8")
                self._user = parse_profiles_text(text)
            except (OSError, ProfileError) as exc:
                self.load_error = f"{self.profiles_path}: {exc}"
        self._merged = overlay(self._base, self._user)

    def save_text(self, text: str) -> None:
        """``PUT /api/profiles``: validate the full JSON, save only what differs from the defaults, reload.

        Raises :class:`ProfileError` ("Invalid executor profiles format: …") and leaves the file untouched.
        """
        if self.profiles_path is None:
            raise ProfileError("no profiles file is configured")
        parsed = parse_profiles_text(text)
        diff = difference(parsed, self._base)
        payload = json.dumps({"executors": diff}, indent=2, sort_keys=True) + "\n"
        atomic_write(self.profiles_path, payload)
        self._user = diff
        self._merged = overlay(self._base, self._user)
        self.load_error = None

    # --- views ---------------------------------------------------------------------------------------

    def profiles_json(self) -> dict[str, dict[str, Any]]:
        """``{EXECUTOR: {VARIANT: {EXECUTOR: {options}}}}`` — ``/api/info.executors``."""
        return copy.deepcopy(self._merged)

    def profiles_text(self) -> str:
        """The pretty-printed ``{"executors": …}`` of ``GET /api/profiles`` ``content``."""
        return json.dumps({"executors": self._merged}, indent=2)

    def capabilities(self) -> dict[str, list[str]]:
        return {name: list(CAPABILITIES[name]) for name in self._merged}

    def options(self, profile_id: ExecutorProfileId) -> dict[str, Any]:
        """The option object of a validated profile id."""
        executor = profile_id.executor
        return dict(self._merged[executor][profile_id.effective_variant][executor])

    def validate_profile_id(self, executor: str, variant: str | None = None) -> ExecutorProfileId:
        """Canonicalise (legacy kebab-case accepted) and check that the variant exists."""
        name = canonical_executor(executor)
        if name not in self._merged:
            raise UnknownExecutorError(f"executor {name} has no profiles")
        if variant is None or (isinstance(variant, str) and variant.strip() == ""):
            return ExecutorProfileId(name, None)
        var = canonical_variant(variant)
        if var not in self._merged[name]:
            known = ", ".join(sorted(self._merged[name]))
            raise UnknownVariantError(
                f"unknown variant {variant!r} for executor {name}; expected one of {known}"
            )
        return ExecutorProfileId(name, var)

    def profile_id_from_json(self, value: Any) -> ExecutorProfileId:
        """An ``ExecutorProfileId`` from request JSON (``executor`` or its alias ``profile``, ``variant``)."""
        if not isinstance(value, Mapping):
            raise ProfileError("executor_profile_id must be an object with 'executor' and optional 'variant'")
        executor = value.get("executor", value.get("profile"))
        variant = value.get("variant")
        if variant is not None and not isinstance(variant, str):
            raise UnknownVariantError("variant must be a string or null")
        return self.validate_profile_id(executor, variant)

    # --- commands ------------------------------------------------------------------------------------

    def build_command(
        self,
        profile_id: ExecutorProfileId,
        *,
        follow_up_session_id: str | None = None,
        new_session_id: str | None = None,
    ) -> tuple[list[str], bool]:
        """``(argv, prompt_via_stdin)`` for a coding-agent request (spec §5.1 command shape).

        ``base + params + additional_params``, split shell-style. ``follow_up_session_id`` adds the agent's
        resume flags (for JSON-RPC/ACP agents the session travels in the protocol, not on the command line).
        ``new_session_id`` is the id a first run's session gets, for agents that tell it nowhere else (Copilot
        names its session only in files of its own, so the server chooses it: ``--session-id``).
        """
        profile_id = self.validate_profile_id(profile_id.executor, profile_id.variant)
        opts = self.options(profile_id)
        executor = profile_id.executor
        session, new = follow_up_session_id, new_session_id
        default_base, params, extra = command_parts(executor, opts, session, new)
        base = opts.get("base_command_override") or default_base
        try:
            argv = shlex.split(base) + params + extra + list(opts.get("additional_params") or [])
        except ValueError as exc:
            raise ProfileError(f"cannot parse the command of {executor}: {exc}") from exc
        if not argv:
            raise ProfileError(f"the command of {executor} is empty")
        return argv, True

    def command(
        self,
        profile_id: ExecutorProfileId,
        *,
        follow_up_session_id: str | None = None,
        new_session_id: str | None = None,
    ) -> Command:
        argv, via_stdin = self.build_command(
            profile_id, follow_up_session_id=follow_up_session_id, new_session_id=new_session_id
        )
        profile_id = self.validate_profile_id(profile_id.executor, profile_id.variant)
        opts = self.options(profile_id)
        executor = profile_id.executor
        router = executor == "CLAUDE_CODE" and bool(opts.get("claude_code_router"))
        cli = "CLAUDE_CODE_ROUTER" if router else executor
        overridden = bool(opts.get("base_command_override"))
        base_tokens = None if overridden else len(shlex.split(BASE_COMMANDS[cli]))
        return Command(argv, via_stdin, executor, cli, base_tokens)

    def full_prompt(self, profile_id: ExecutorProfileId, prompt: str) -> str:
        """The prompt with the profile's ``append_prompt`` appended."""
        extra = self.options(profile_id).get("append_prompt")
        return f"{prompt}{extra}" if extra else prompt

    def stdin_payload(self, profile_id: ExecutorProfileId, prompt: str) -> bytes:
        """The bytes to write to the agent's stdin (then close it).

        Claude Code runs with ``--input-format=stream-json``, so its prompt is one stream-json user message;
        the other agents read the plain prompt text.
        """
        text = self.full_prompt(profile_id, prompt)
        if profile_id.executor == "CLAUDE_CODE":
            message = {"type": "user", "message": {"role": "user", "content": text}}
            return (json.dumps(message, ensure_ascii=False) + "\n").encode()
        return text.encode()
