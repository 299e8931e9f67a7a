"""Reading an agent's own error lines as a person would: not installed, no network, not signed in.

Run as npm ships them and without credentials, the agent CLIs fail in their own words — an npm 404, a
``getaddrinfo ENOTFOUND``, "Invalid API key · Please run /login", a login flow waiting on a closed stdin —
and some keep retrying for minutes. :func:`diagnose` recognises those lines and gives the sentence the
board shows instead, naming the cause and the fix (the web UI's agent login for credentials). npm's update
and deprecation notices are not errors: :func:`is_npm_notice` lets a normaliser show them as system lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["not_installed", "registry", "network", "login"]

_NAMES: Final = {
    "CLAUDE_CODE": "Claude Code",
    "AMP": "Amp",
    "GEMINI": "Gemini CLI",
    "QWEN_CODE": "Qwen Code",
    "CODEX": "Codex",
    "OPENCODE": "OpenCode",
    "CURSOR_AGENT": "Cursor Agent",
    "COPILOT": "GitHub Copilot CLI",
}
_KEYS: Final = {
    "CLAUDE_CODE": "ANTHROPIC_API_KEY",
    "AMP": "AMP_API_KEY",
    "GEMINI": "GEMINI_API_KEY",
    "QWEN_CODE": "OPENAI_API_KEY",
    "CODEX": "OPENAI_API_KEY",
    "OPENCODE": "the provider's API key (e.g. ANTHROPIC_API_KEY)",
    "CURSOR_AGENT": "CURSOR_API_KEY",
    "COPILOT": "COPILOT_GITHUB_TOKEN or GH_TOKEN",
}

#: Characters of a line that are read (the patterns stay linear, and output floods stay cheap).
_LONGEST = 600
#: Every pattern below needs one of these (lower-case) words; a line with none of them is no failure.
_TRIGGERS: Final = (
    "npm",
    "registry",
    "executable",
    "not found",
    "enotfound",
    "eai_again",
    "econn",
    "enetunreach",
    "etimedout",
    "unreachable",
    "connect",
    "fetch",
    "resolve host",
    "api key",
    "api_key",
    "login",
    "log in",
    "logged in",
    "sign in",
    "signed in",
    "authenticat",
    "unauthori",
    "401",
    "auth method",
)
_NPM_NOTICE = re.compile(r"^\s*npm (?:notice|warn|WARN)\b")
_NOT_INSTALLED = re.compile(
    r"(?i)npm (?:error|ERR!) (?:code E404|404 )|could not determine executable to run"
    r"|: (?:command )?not found$|command not found"
)
_REGISTRY = re.compile(
    r"(?i)npm (?:error|ERR!) (?:code (?:ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET)|network)"
    r"|request to https?://registry\.[^ ]+ failed"
)
_NETWORK = re.compile(
    r"(?i)getaddrinfo (?:ENOTFOUND|EAI_AGAIN)|\bENOTFOUND\b|\bEAI_AGAIN\b|ECONNREFUSED|ENETUNREACH"
    r"|network is unreachable|unable to connect|cannot connect to api|fetch failed"
    r"|failed to fetch|connection refused|could not resolve host|connect ETIMEDOUT"
)
_LOGIN = re.compile(
    r"(?i)invalid api key|please run /login|no api key found|starting login flow"
    r"|no authentication information found|not logged in|not signed in|please (?:log ?in|sign in)"
    r"|press any key to sign in|authentication required|\bunauthori[sz]ed\b|(?:status|http|code)\W{0,3}401\b"
    r"|api key (?:is )?(?:missing|not (?:set|found))|missing api key|please set an auth method"
    r"|\b[A-Z][A-Z0-9]*_API_KEY (?:is )?(?:not set|missing|required)|login required"
)


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong (``kind``), the sentence shown, and the agent's own line it was read from."""

    kind: Kind
    message: str
    line: str

    @property
    def setup_required(self) -> bool:
        """Something the user sets up once (install, sign in) rather than a passing fault."""
        return self.kind in ("not_installed", "login")


def is_agent(executor: str) -> bool:
    return executor in _NAMES


def agent_name(executor: str) -> str:
    return _NAMES.get(executor, executor)


def is_npm_notice(line: str) -> bool:
    """npm's own notices ("npm notice New major version…", "npm warn deprecated…"): not the agent failing."""
    return _NPM_NOTICE.match(line) is not None


def diagnose(executor: str, line: str) -> Diagnosis | None:
    """The failure a line of the agent's output (stdout text or stderr) reports, if it is one we know."""
    text = line.strip()[:_LONGEST]  # error lines are short; a long line is read by its start only
    if not text or is_npm_notice(text):
        return None
    lower = text.lower()
    if not any(word in lower for word in _TRIGGERS):  # the common case, cheaply: an ordinary line
        return None
    name = agent_name(executor)
    if _REGISTRY.search(text):
        return Diagnosis(
            "registry",
            f"{name} could not be downloaded: the npm registry is not reachable ({_clip(text)}). Install "
            "the CLI where agents run (see launchers in the settings) or give them access to the registry.",
            text,
        )
    if _NOT_INSTALLED.search(text):
        return Diagnosis(
            "not_installed",
            f"{name} is not installed where agents run and could not be fetched ({_clip(text)}). Install "
            "it (npm install -g <its package>) or check the profile's base_command_override.",
            text,
        )
    if _LOGIN.search(text):
        return Diagnosis(
            "login",
            f"{name} is not signed in ({_clip(text)}). Sign in with the agent login of the web UI "
            f"(Settings → Agents), or give the server {_KEYS.get(executor, 'its API key')}.",
            text,
        )
    if _NETWORK.search(text):
        return Diagnosis(
            "network",
            f"{name} cannot reach its model service ({_clip(text)}). Check that agents have network access "
            '(in cloud mode docker.network is "none" unless set) and any proxy settings.',
            text,
        )
    return None


def no_answer_message(executor: str, exit_code: int | None) -> str:
    how = "exited" if exit_code is None else f"exited with code {exit_code}"
    return (
        f"{agent_name(executor)} {how} without answering: nothing it printed was a reply, so the run "
        "is not a success (check that its CLI is signed in and can reach its model service)."
    )


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
