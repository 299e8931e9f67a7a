"""Executor profiles: which coding agents exist, their variants, and the command line each one runs.

A profile is ``executors.<EXECUTOR>.<VARIANT> = {<EXECUTOR>: {options}}`` (spec anyon-api.md §5.1,
types.md §4). The effective profiles are three layers merged, lowest first:

1. the built-in defaults below (types.md §4.5);
2. the operator's settings, ``[executors.<EXECUTOR>.<VARIANT>]`` (options merged key by key, so an operator
   can set just ``base_command_override`` without losing the variant's other options);
3. the user's ``<data_dir>/profiles.json``, written by ``PUT /api/profiles`` (a variant present there
   replaces the variant below it, as in the reference; only the differences from layers 1+2 are saved).

The prompt always goes over stdin (spec §5.1): :meth:`ExecutorProfiles.build_command` says so, and
:meth:`ExecutorProfiles.stdin_payload` gives the bytes to write.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from anyon.services.agents.launchers import AGENT_CLIS, base_command

EXECUTORS: Final = (
    "CLAUDE_CODE",
    "AMP",
    "GEMINI",
    "CODEX",
    "OPENCODE",
    "CURSOR_AGENT",
    "QWEN_CODE",
    "COPILOT",
)
EXECUTOR_ALIASES: Final = {"CURSOR": "CURSOR_AGENT"}

CAPABILITIES: Final[dict[str, list[str]]] = {
    "CLAUDE_CODE": ["SESSION_FORK"],
    "AMP": ["SESSION_FORK"],
    "GEMINI": ["SESSION_FORK"],
    "CODEX": ["SESSION_FORK"],
    "OPENCODE": [],
    "CURSOR_AGENT": ["SETUP_HELPER"],
    "QWEN_CODE": ["SESSION_FORK"],
    "COPILOT": [],
}

DEFAULT_VARIANT: Final = "DEFAULT"

# Base commands (spec §5.1 table, with the versions the npm registry serves); the variant's options become
# params after them. Which binary actually runs is decided at start (launchers.py).
BASE_COMMANDS: Final = {name: base_command(name) for name in AGENT_CLIS}

_STR, _BOOL, _STRLIST = "string", "boolean", "array of strings"
_COMMON: Final = {"append_prompt": _STR, "base_command_override": _STR, "additional_params": _STRLIST}
_ENUMS: Final = {
    "sandbox": ("auto", "read-only", "workspace-write", "danger-full-access"),
    "ask_for_approval": ("unless-trusted", "on-failure", "on-request", "never"),
    "model_reasoning_effort": ("low", "medium", "high"),
    "model_reasoning_summary": ("auto", "concise", "detailed", "none"),
    "model_reasoning_summary_format": ("none", "experimental"),
}
OPTION_TYPES: Final[dict[str, dict[str, Any]]] = {
    "CLAUDE_CODE": {
        "claude_code_router": _BOOL,
        "plan": _BOOL,
        "approvals": _BOOL,
        "model": _STR,
        "dangerously_skip_permissions": _BOOL,
    },
    "AMP": {"dangerously_allow_all": _BOOL},
    "GEMINI": {"model": ("default", "flash"), "yolo": _BOOL},
    "CODEX": {
        "sandbox": _ENUMS["sandbox"],
        "ask_for_approval": _ENUMS["ask_for_approval"],
        "oss": _BOOL,
        "model": _STR,
        "model_reasoning_effort": _ENUMS["model_reasoning_effort"],
        "model_reasoning_summary": _ENUMS["model_reasoning_summary"],
        "model_reasoning_summary_format": _ENUMS["model_reasoning_summary_format"],
        "profile": _STR,
        "base_instructions": _STR,
        "include_plan_tool": _BOOL,
        "include_apply_patch_tool": _BOOL,
    },
    "OPENCODE": {"model": _STR, "agent": _STR},
    "CURSOR_AGENT": {"force": _BOOL, "model": _STR},
    "QWEN_CODE": {"yolo": _BOOL},
    "COPILOT": {
        "model": _STR,
        "allow_all_tools": _BOOL,
        "allow_tool": _STR,
        "deny_tool": _STR,
        "add_dir": _STRLIST,
        "disable_mcp_server": _STRLIST,
    },
}


def _variants(executor: str, variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {executor: {"append_prompt": None, **opts}} for name, opts in variants.items()}


def _cursor(model: str) -> dict[str, Any]:
    return {"force": True, "model": model}


def _copilot(model: str | None) -> dict[str, Any]:
    return {"allow_all_tools": True} | ({"model": model} if model else {})


BUILTIN_PROFILES: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "CLAUDE_CODE": _variants(
        "CLAUDE_CODE",
        {
            "DEFAULT": {"dangerously_skip_permissions": True},
            "PLAN": {"plan": True},
            "APPROVALS": {"approvals": True},
        },
    ),
    "AMP": _variants("AMP", {"DEFAULT": {"dangerously_allow_all": True}}),
    "GEMINI": _variants(
        "GEMINI", {"DEFAULT": {"model": "default", "yolo": True}, "FLASH": {"model": "flash", "yolo": True}}
    ),
    "CODEX": _variants(
        "CODEX",
        {
            "DEFAULT": {"sandbox": "danger-full-access"},
            "HIGH": {"sandbox": "danger-full-access", "model_reasoning_effort": "high"},
            "APPROVALS": {"sandbox": "workspace-write", "ask_for_approval": "unless-trusted"},
        },
    ),
    "OPENCODE": _variants("OPENCODE", {"DEFAULT": {}}),
    "QWEN_CODE": _variants("QWEN_CODE", {"DEFAULT": {"yolo": True}}),
    "CURSOR_AGENT": _variants(
        "CURSOR_AGENT",
        {
            "DEFAULT": _cursor("auto"),
            "SONNET_4_5": _cursor("sonnet-4.5"),
            "SONNET_4_5_THINKING": _cursor("sonnet-4.5-thinking"),
            "OPUS_4_1": _cursor("opus-4.1"),
            "GPT_5": _cursor("gpt-5"),
            "GROK": _cursor("grok"),
        },
    ),
    "COPILOT": _variants(
        "COPILOT",
        {
            "DEFAULT": _copilot(None),
            "GPT_5": _copilot("gpt-5"),
            "CLAUDE_SONNET_4_5": _copilot("claude-sonnet-4.5"),
            "CLAUDE_SONNET_4": _copilot("claude-sonnet-4"),
        },
    ),
}


class ProfileError(ValueError):
    """Invalid profile input; the message is meant for the user (the API returns it as a soft error)."""


class UnknownExecutorError(ProfileError):
    pass


class UnknownVariantError(ProfileError):
    pass


@dataclass(frozen=True)
class ExecutorProfileId:
    """``{executor, variant?}``; ``variant`` ``None`` means DEFAULT and is left out of the JSON."""

    executor: str
    variant: str | None = None

    @property
    def effective_variant(self) -> str:
        return self.variant or DEFAULT_VARIANT

    def to_json(self) -> dict[str, str]:
        out = {"executor": self.executor}
        if self.variant is not None:
            out["variant"] = self.variant
        return out


def canonical_executor(name: str) -> str:
    """``claude-code``/``claude_code``/``CLAUDE_CODE`` → ``CLAUDE_CODE``; ``CURSOR`` → ``CURSOR_AGENT``."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownExecutorError("executor must be a non-empty string")
    key = name.strip().replace("-", "_").upper()
    key = EXECUTOR_ALIASES.get(key, key)
    if key not in EXECUTORS:
        raise UnknownExecutorError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
    return key


def canonical_variant(name: str) -> str:
    """Variant keys are SCREAMING_SNAKE_CASE: ``plan`` → ``PLAN``, ``sonnet-4-5`` → ``SONNET_4_5``."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownVariantError("variant must be a non-empty string")
    key = re.sub(r"[^A-Za-z0-9]+", "_", name.strip()).strip("_").upper()
    if not key:
        raise UnknownVariantError(f"invalid variant name {name!r}")
    return key


@dataclass(frozen=True)
class Command:
    """What to spawn: ``argv`` (program first) and whether the prompt is written to stdin.

    ``base_tokens`` is how many leading tokens are the executor's default base command (``None`` when the
    profile overrides it) and ``cli`` names that base's CLI: the launcher may swap them for an installed
    binary.
    """

    argv: list[str]
    prompt_via_stdin: bool
    executor: str = ""
    cli: str = ""
    base_tokens: int | None = None


class ExecutorProfiles:
    """The merged profiles, their persistence in ``profiles.json``, and command building."""

    def __init__(
        self,
        *,
        profiles_path: str | Path | None = None,
        settings_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.profiles_path = Path(profiles_path) if profiles_path is not None else None
        self._base = _merge_settings(copy.deepcopy(BUILTIN_PROFILES), settings_overrides or {})
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
        self._merged = _overlay(self._base, self._user)

    def save_text(self, text: str) -> None:
        """``PUT /api/profiles``: validate the full JSON, save only what differs from the defaults, reload.

        Raises :class:`ProfileError` ("Invalid executor profiles format: …") and leaves the file untouched.
        """
        if self.profiles_path is None:
            raise ProfileError("no profiles file is configured")
        parsed = parse_profiles_text(text)
        diff = _difference(parsed, self._base)
        payload = json.dumps({"executors": diff}, indent=2, sort_keys=True) + "\n"
        _atomic_write(self.profiles_path, payload)
        self._user = diff
        self._merged = _overlay(self._base, self._user)
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
        default_base, params, extra = _command_parts(executor, opts, session, new)
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


def _command_parts(
    executor: str, o: Mapping[str, Any], session: str | None, new_session: str | None = None
) -> tuple[str, list[str], list[str]]:
    """(default base command, params from options, session params: a follow-up's, or a new session's id)."""
    base = BASE_COMMANDS[executor]
    params: list[str] = []
    follow: list[str] = []
    if executor == "CLAUDE_CODE":
        if o.get("claude_code_router"):
            base = BASE_COMMANDS["CLAUDE_CODE_ROUTER"]
        params.append("-p")
        if o.get("plan") or o.get("approvals"):
            params += ["--permission-prompt-tool=stdio", "--permission-mode=bypassPermissions"]
        if o.get("dangerously_skip_permissions"):
            params.append("--dangerously-skip-permissions")
        if o.get("model"):
            params += ["--model", o["model"]]
        params += [
            "--verbose",
            "--output-format=stream-json",
            "--input-format=stream-json",
            "--include-partial-messages",
        ]
        if session:
            follow = ["--fork-session", "--resume", session]
    elif executor == "AMP":
        if session:
            params += ["threads", "continue", session]
        params += ["--execute", "--stream-json"]
        if o.get("dangerously_allow_all"):
            params.append("--dangerously-allow-all")
    elif executor in ("GEMINI", "QWEN_CODE"):
        if executor == "GEMINI" and o.get("model") == "flash":
            params += ["--model", "gemini-2.5-flash"]
        if o.get("yolo"):
            params.append("--yolo")
        params.append("--experimental-acp")
    elif executor == "CODEX":
        params.append("app-server")
        if o.get("oss"):
            params.append("--oss")
    elif executor == "OPENCODE":
        params += ["run", "--print-logs", "--format", "json"]
        if o.get("model"):
            params += ["--model", o["model"]]
        if o.get("agent"):
            params += ["--agent", o["agent"]]
        if session:
            follow = ["--session", session]
    elif executor == "CURSOR_AGENT":
        params += ["-p", "--output-format=stream-json"]
        if o.get("force"):
            params.append("--force")
        if o.get("model"):
            params += ["--model", o["model"]]
        if session:
            follow = ["--resume", session]
    elif executor == "COPILOT":
        params += ["--no-color"]
        if o.get("allow_all_tools"):
            params.append("--allow-all-tools")
        if o.get("model"):
            params += ["--model", o["model"]]
        if o.get("allow_tool"):
            params += ["--allow-tool", o["allow_tool"]]
        if o.get("deny_tool"):
            params += ["--deny-tool", o["deny_tool"]]
        for d in o.get("add_dir") or []:
            params += ["--add-dir", d]
        for m in o.get("disable_mcp_server") or []:
            params += ["--disable-mcp-server", m]
        if session:
            follow = ["--resume", session]
        elif new_session:
            follow = ["--session-id", new_session]
    return base, params, follow


# --- validation and merging ------------------------------------------------------------------------------


def parse_profiles_text(text: str) -> dict[str, dict[str, Any]]:
    """Parse and validate ``{"executors": {...}}`` text; returns the canonical ``executors`` map."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"Invalid executor profiles format: not JSON ({exc})") from exc
    try:
        return validate_profiles(data)
    except ProfileError as exc:
        raise ProfileError(f"Invalid executor profiles format: {exc}") from exc


def validate_profiles(data: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(data, Mapping) or not isinstance(data.get("executors"), Mapping):
        raise ProfileError('expected an object {"executors": {EXECUTOR: {VARIANT: {EXECUTOR: {options}}}}}')
    unknown = sorted(str(key) for key in data if key != "executors")
    if unknown:
        raise ProfileError(f"unknown top-level key(s): {', '.join(unknown)}; only 'executors' is allowed")
    out: dict[str, dict[str, Any]] = {}
    for ex_name, variants in data["executors"].items():
        executor = canonical_executor(ex_name)
        if not isinstance(variants, Mapping):
            raise ProfileError(f"executors.{ex_name} must be an object of variants")
        for var_name, config in variants.items():
            variant = canonical_variant(var_name)
            where = f"executors.{executor}.{variant}"
            if not isinstance(config, Mapping) or len(config) != 1:
                raise ProfileError(f"{where} must be an object with the single key {executor}")
            ((tag, opts),) = config.items()
            if canonical_executor(tag) != executor:
                raise ProfileError(f"{where} is tagged {tag!r}; expected {executor}")
            out.setdefault(executor, {})[variant] = {executor: _validate_options(executor, opts, where)}
    return out


def _validate_options(executor: str, opts: Any, where: str) -> dict[str, Any]:
    if not isinstance(opts, Mapping):
        raise ProfileError(f"{where}.{executor} must be an object of options")
    allowed = {**_COMMON, **OPTION_TYPES[executor]}
    clean: dict[str, Any] = {"append_prompt": None}
    for key, value in opts.items():
        if key not in allowed:
            raise ProfileError(
                f"{where}.{executor}: unknown option {key!r}; allowed: {', '.join(sorted(allowed))}"
            )
        if value is None:
            if executor == "GEMINI" and key == "model":
                raise ProfileError(f"{where}.GEMINI.model is required: 'default' or 'flash'")
            if key == "append_prompt":
                clean[key] = None
            continue
        kind = allowed[key]
        ok = (
            (kind == _STR and isinstance(value, str))
            or (kind == _BOOL and isinstance(value, bool))
            or (kind == _STRLIST and isinstance(value, list) and all(isinstance(v, str) for v in value))
            or (isinstance(kind, tuple) and value in kind)
        )
        if not ok:
            expected = f"one of {', '.join(kind)}" if isinstance(kind, tuple) else f"a {kind}"
            raise ProfileError(f"{where}.{executor}.{key} must be {expected}, not {value!r}")
        clean[key] = value
    if executor == "GEMINI" and "model" not in clean:
        raise ProfileError(f"{where}.GEMINI.model is required: 'default' or 'flash'")
    return clean


def _merge_settings(
    base: dict[str, dict[str, Any]], overrides: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Layer 2: ``{EXECUTOR: {VARIANT: {options}}}`` from settings, merged option by option."""
    for ex_name, variants in overrides.items():
        executor = canonical_executor(ex_name)
        if not isinstance(variants, Mapping):
            raise ProfileError(f"settings executors.{ex_name} must be a table of variants")
        for var_name, opts in variants.items():
            variant = canonical_variant(var_name)
            where = f"settings executors.{executor}.{variant}"
            if isinstance(opts, Mapping) and len(opts) == 1 and executor in opts:
                opts = opts[executor]  # the tagged form is accepted too
            if not isinstance(opts, Mapping):
                raise ProfileError(f"{where} must be a table of options")
            current = base.get(executor, {}).get(variant, {executor: {}})[executor]
            given = {k: v for k, v in opts.items()}
            merged = {**current, **given}
            if executor == "GEMINI" and "model" not in merged:
                merged["model"] = "default"
            base.setdefault(executor, {})[variant] = {executor: _validate_options(executor, merged, where)}
    return base


def _overlay(base: dict[str, dict[str, Any]], user: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = copy.deepcopy(base)
    for executor, variants in user.items():
        for variant, config in variants.items():
            merged.setdefault(executor, {})[variant] = copy.deepcopy(config)
    return merged


def _difference(
    full: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    diff: dict[str, dict[str, Any]] = {}
    for executor, variants in full.items():
        for variant, config in variants.items():
            if base.get(executor, {}).get(variant) != config:
                diff.setdefault(executor, {})[variant] = config
    return diff


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
