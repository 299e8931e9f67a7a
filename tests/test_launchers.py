"""Which binary runs an agent (launchers.py), and what the user is shown of it."""

from __future__ import annotations

import asyncio
import shlex

import pytest

from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.agents.launchers import (
    AGENT_CLIS,
    AgentLauncher,
    AgentNotInstalled,
    display_argv,
    display_tokens,
)
from anyon.services.agents.profile_catalog import ExecutorProfileId


def resolve(mode: str, executor: str, installed: dict[str, str], **profile: object) -> tuple[list[str], str]:
    profiles = ExecutorProfiles()
    if profile:
        profiles = ExecutorProfiles(settings_overrides={executor: {"DEFAULT": profile}})
    command = profiles.command(ExecutorProfileId(executor))
    asked: list[str] = []

    async def which(program: str) -> str | None:
        asked.append(program)
        return installed.get(program)

    launch = asyncio.run(
        AgentLauncher({executor: mode}).resolve(
            executor, command.argv, base_tokens=command.base_tokens, cli_key=command.cli, which=which
        )
    )
    return launch.argv, launch.how


def test_auto_prefers_the_installed_cli_and_keeps_the_params() -> None:
    argv, how = resolve("auto", "AMP", {"amp": "/usr/local/bin/amp"})
    assert how == "installed"
    assert argv == ["/usr/local/bin/amp", "--execute", "--stream-json", "--dangerously-allow-all"]


def test_auto_falls_back_to_the_pinned_package() -> None:
    argv, how = resolve("auto", "OPENCODE", {})
    assert how == "npx"
    assert argv[:3] == ["npx", "-y", "opencode-ai@1.18.33"] and argv[3:5] == ["run", "--print-logs"]


def test_npx_is_forced_even_when_installed() -> None:
    argv, how = resolve("npx", "COPILOT", {"copilot": "/usr/bin/copilot"})
    assert (how, argv[:3]) == ("npx", ["npx", "-y", "@github/copilot@1.0.102"])


def test_installed_is_required_when_forced_and_names_the_install() -> None:
    with pytest.raises(AgentNotInstalled) as missing:
        resolve("installed", "CODEX", {})
    assert str(missing.value).startswith("codex is not installed")
    assert "npm install -g @openai/codex@0.55.0" in str(missing.value)


def test_cursor_has_no_package_so_auto_needs_it_installed() -> None:
    with pytest.raises(AgentNotInstalled) as missing:
        resolve("auto", "CURSOR_AGENT", {})
    assert "cursor.com/install" in str(missing.value)


def test_the_router_variant_keeps_its_subcommand() -> None:
    argv, how = resolve("auto", "CLAUDE_CODE", {"ccr": "/opt/bin/ccr"}, claude_code_router=True)
    assert (how, argv[:3]) == ("installed", ["/opt/bin/ccr", "code", "-p"])


def test_an_override_runs_as_written_without_a_lookup() -> None:
    argv, how = resolve("installed", "GEMINI", {}, base_command_override="my-gemini --flag")
    assert how == "override" and argv[:2] == ["my-gemini", "--flag"]


def test_every_default_base_is_the_pinned_npx_form() -> None:
    for executor, cli in AGENT_CLIS.items():
        if cli.package is not None:
            assert f"{cli.package}@{cli.version}" in shlex.join(cli.npx_argv), executor


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["x", "--api-key", "sk-1"], ["x", "--api-key", "***"]),
        (["x", "--api_key=sk-1"], ["x", "--api_key=***"]),
        (["x", "--token", "t", "--model", "m"], ["x", "--token", "***", "--model", "m"]),
        (["x", "OPENAI_API_KEY=sk-1"], ["x", "OPENAI_API_KEY=***"]),
        (["x", "https://u:pw@h/p"], ["x", "https://u:***@h/p"]),
        (["x", "--password=p w"], ["x", "--password=***"]),
        (["x", "--model", "sonnet"], ["x", "--model", "sonnet"]),
    ],
)
def test_secrets_are_masked_in_what_is_shown(argv: list[str], shown: list[str]) -> None:
    assert display_tokens(argv) == shown
    assert "sk-1" not in display_argv(argv) and "pw" not in display_argv(argv)


def test_found_programs_are_kept_per_container_and_bounded() -> None:
    from anyon.services.executions.launch import _CACHED_CONTAINERS, FoundPrograms

    found = FoundPrograms()
    found.put("a1", "amp", "/usr/bin/amp")
    assert found.get("a1", "amp") == "/usr/bin/amp"
    assert found.get("a2", "amp") is None and found.get("a1", "codex") is None
    for i in range(_CACHED_CONTAINERS):
        found.put(f"b{i}", "amp", "/x")
    assert found.get("a1", "amp") is None  # the oldest container was forgotten
    assert found.get(f"b{_CACHED_CONTAINERS - 1}", "amp") == "/x"
