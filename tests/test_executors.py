"""Executor profiles: built-ins, the three override layers, validation, persistence and command shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anyon.services.agents.executors import ExecutorProfiles
from anyon.services.agents.profile_catalog import (
    BUILTIN_PROFILES,
    EXECUTORS,
    ExecutorProfileId,
    ProfileError,
    UnknownExecutorError,
    UnknownVariantError,
)

CLAUDE_ALWAYS = [
    "--verbose",
    "--output-format=stream-json",
    "--input-format=stream-json",
    "--include-partial-messages",
]


def test_builtin_profiles_match_the_spec(tmp_path: Path) -> None:
    profiles = ExecutorProfiles(profiles_path=tmp_path / "profiles.json")
    data = profiles.profiles_json()
    assert set(data) == set(EXECUTORS)
    assert {k: sorted(v) for k, v in data.items()} == {
        "CLAUDE_CODE": ["APPROVALS", "DEFAULT", "PLAN"],
        "AMP": ["DEFAULT"],
        "GEMINI": ["DEFAULT", "FLASH"],
        "CODEX": ["APPROVALS", "DEFAULT", "HIGH"],
        "OPENCODE": ["DEFAULT"],
        "QWEN_CODE": ["DEFAULT"],
        "CURSOR_AGENT": ["DEFAULT", "GPT_5", "GROK", "OPUS_4_1", "SONNET_4_5", "SONNET_4_5_THINKING"],
        "COPILOT": ["CLAUDE_SONNET_4", "CLAUDE_SONNET_4_5", "DEFAULT", "GPT_5"],
    }
    assert data["CLAUDE_CODE"]["PLAN"] == {"CLAUDE_CODE": {"append_prompt": None, "plan": True}}
    assert data["GEMINI"]["FLASH"]["GEMINI"] == {"append_prompt": None, "model": "flash", "yolo": True}
    assert data["CODEX"]["HIGH"]["CODEX"]["model_reasoning_effort"] == "high"
    assert all(v["CURSOR_AGENT"]["force"] for v in data["CURSOR_AGENT"].values())
    assert data["COPILOT"]["GPT_5"]["COPILOT"] == {
        "append_prompt": None,
        "allow_all_tools": True,
        "model": "gpt-5",
    }
    caps = profiles.capabilities()
    assert caps["CLAUDE_CODE"] == ["SESSION_FORK"] and caps["CURSOR_AGENT"] == ["SETUP_HELPER"]
    assert caps["OPENCODE"] == [] and caps["COPILOT"] == []
    text = profiles.profiles_text()
    assert json.loads(text) == {"executors": data} and "\n  " in text  # pretty-printed


def test_validate_profile_id_accepts_legacy_names() -> None:
    profiles = ExecutorProfiles()
    assert profiles.validate_profile_id("claude-code") == ExecutorProfileId("CLAUDE_CODE", None)
    assert profiles.validate_profile_id("CURSOR", "sonnet-4-5") == ExecutorProfileId(
        "CURSOR_AGENT", "SONNET_4_5"
    )
    assert profiles.validate_profile_id("codex", "high").to_json() == {"executor": "CODEX", "variant": "HIGH"}
    assert profiles.validate_profile_id("AMP", None).to_json() == {"executor": "AMP"}
    assert profiles.profile_id_from_json({"profile": "gemini", "variant": "FLASH"}).variant == "FLASH"
    with pytest.raises(UnknownExecutorError, match="unknown executor"):
        profiles.validate_profile_id("NOPE")
    with pytest.raises(UnknownVariantError, match="expected one of APPROVALS, DEFAULT, PLAN"):
        profiles.validate_profile_id("CLAUDE_CODE", "TURBO")
    with pytest.raises(ProfileError):
        profiles.profile_id_from_json("CLAUDE_CODE")


def test_claude_command_shapes() -> None:
    p = ExecutorProfiles()
    argv, stdin = p.build_command(ExecutorProfileId("CLAUDE_CODE"))
    assert stdin is True
    assert argv == [
        "npx",
        "-y",
        "@anthropic-ai/claude-code@2.0.31",
        "-p",
        "--dangerously-skip-permissions",
        *CLAUDE_ALWAYS,
    ]
    plan, _ = p.build_command(ExecutorProfileId("CLAUDE_CODE", "PLAN"))
    assert plan[3:6] == ["-p", "--permission-prompt-tool=stdio", "--permission-mode=bypassPermissions"]
    follow, _ = p.build_command(ExecutorProfileId("CLAUDE_CODE"), follow_up_session_id="abc-123")
    assert follow[-3:] == ["--fork-session", "--resume", "abc-123"]
    payload = json.loads(p.stdin_payload(ExecutorProfileId("CLAUDE_CODE"), "fix it"))
    assert payload == {"type": "user", "message": {"role": "user", "content": "fix it"}}


def test_other_executor_command_shapes() -> None:
    p = ExecutorProfiles()

    def cmd(executor: str, variant: str | None = None, session: str | None = None) -> list[str]:
        return p.build_command(ExecutorProfileId(executor, variant), follow_up_session_id=session)[0]

    assert cmd("AMP") == [
        "npx",
        "-y",
        "@sourcegraph/amp@0.0.1790142911-g7618fb",
        "--execute",
        "--stream-json",
        "--dangerously-allow-all",
    ]
    assert cmd("AMP", session="T-1")[3:6] == ["threads", "continue", "T-1"]
    assert cmd("GEMINI") == ["npx", "-y", "@google/gemini-cli@0.61.0", "--yolo", "--experimental-acp"]
    assert cmd("GEMINI", "FLASH")[3:5] == ["--model", "gemini-2.5-flash"]
    assert cmd("QWEN_CODE") == ["npx", "-y", "@qwen-code/qwen-code@0.24.4", "--yolo", "--experimental-acp"]
    assert cmd("CODEX") == ["npx", "-y", "@openai/codex@0.55.0", "app-server"]
    assert cmd("OPENCODE")[:4] == ["npx", "-y", "opencode-ai@1.18.33", "run"]
    assert cmd("CURSOR_AGENT", "GPT_5") == [
        "cursor-agent",
        "-p",
        "--output-format=stream-json",
        "--force",
        "--model",
        "gpt-5",
    ]
    assert cmd("CURSOR_AGENT", session="s")[-2:] == ["--resume", "s"]
    assert cmd("COPILOT", "CLAUDE_SONNET_4")[-3:] == ["--allow-all-tools", "--model", "claude-sonnet-4"]
    # Copilot's first run gets the session id the server chose; a follow-up resumes it (never both)
    copilot = ExecutorProfileId("COPILOT")
    assert p.build_command(copilot, new_session_id="n-1")[0][-2:] == ["--session-id", "n-1"]
    resumed = p.build_command(copilot, follow_up_session_id="s-1", new_session_id="n-2")[0]
    assert resumed[-2:] == ["--resume", "s-1"] and "--session-id" not in resumed
    assert "--session-id" not in p.build_command(ExecutorProfileId("AMP"), new_session_id="n-3")[0]
    assert p.stdin_payload(ExecutorProfileId("GEMINI"), "hello") == b"hello"


def test_settings_overrides_merge_option_by_option(tmp_path: Path) -> None:
    p = ExecutorProfiles(
        profiles_path=tmp_path / "profiles.json",
        settings_overrides={
            "CLAUDE_CODE": {
                "DEFAULT": {
                    "base_command_override": "/opt/agent --flag 'two words'",
                    "additional_params": ["--extra"],
                    "append_prompt": "\n\nBe brief.",
                }
            },
            "claude-code": {"fast": {"model": "haiku"}},  # a new variant, legacy spelling
        },
    )
    pid = p.validate_profile_id("CLAUDE_CODE")
    argv, _ = p.build_command(pid)
    assert argv[:3] == ["/opt/agent", "--flag", "two words"]
    assert "--dangerously-skip-permissions" in argv  # the built-in option survived the merge
    assert argv[-1] == "--extra"
    assert json.loads(p.stdin_payload(pid, "task"))["message"]["content"] == "task\n\nBe brief."
    assert p.profiles_json()["CLAUDE_CODE"]["FAST"]["CLAUDE_CODE"]["model"] == "haiku"
    with pytest.raises(ProfileError, match="unknown option 'colour'"):
        ExecutorProfiles(settings_overrides={"AMP": {"DEFAULT": {"colour": "red"}}})
    with pytest.raises(ProfileError, match="must be a boolean"):
        ExecutorProfiles(settings_overrides={"AMP": {"DEFAULT": {"dangerously_allow_all": "yes"}}})


def test_put_profiles_saves_only_differences_atomically_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "data" / "profiles.json"
    p = ExecutorProfiles(profiles_path=path)
    doc = json.loads(p.profiles_text())
    doc["executors"]["CODEX"]["DEFAULT"]["CODEX"]["model"] = "o3"
    doc["executors"]["CLAUDE_CODE"]["custom"] = {"CLAUDE_CODE": {"plan": True, "model": "opus"}}
    p.save_text(json.dumps(doc))
    saved = json.loads(path.read_text())
    assert saved == {
        "executors": {
            "CODEX": {
                "DEFAULT": {"CODEX": {"append_prompt": None, "sandbox": "danger-full-access", "model": "o3"}}
            },
            "CLAUDE_CODE": {
                "CUSTOM": {"CLAUDE_CODE": {"append_prompt": None, "plan": True, "model": "opus"}}
            },
        }
    }
    assert [f for f in os.listdir(path.parent) if f != "profiles.json"] == []  # no temp file left
    fresh = ExecutorProfiles(profiles_path=path)  # another process reading the file
    assert fresh.options(fresh.validate_profile_id("CODEX"))["model"] == "o3"
    assert fresh.validate_profile_id("claude_code", "custom").variant == "CUSTOM"
    assert fresh.profiles_json()["GEMINI"] == BUILTIN_PROFILES["GEMINI"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected an object"),
        ('{"executors": {"NOPE": {}}}', "unknown executor"),
        ('{"executors": {"AMP": {"DEFAULT": {"CODEX": {}}}}}', "tagged"),
        ('{"executors": {"GEMINI": {"DEFAULT": {"GEMINI": {"yolo": true}}}}}', "model is required"),
        ('{"executors": {"CODEX": {"DEFAULT": {"CODEX": {"sandbox": "yolo"}}}}}', "one of auto"),
        ('{"executors": {"COPILOT": {"DEFAULT": {"COPILOT": {"add_dir": [1]}}}}}', "array of strings"),
    ],
)
def test_invalid_profiles_are_refused_and_the_file_is_untouched(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "profiles.json"
    path.write_text('{"executors": {}}')
    p = ExecutorProfiles(profiles_path=path)
    with pytest.raises(ProfileError, match="Invalid executor profiles format") as info:
        p.save_text(text)
    assert message in str(info.value)
    assert path.read_text() == '{"executors": {}}'


def test_broken_profiles_file_keeps_defaults_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text("{broken")
    p = ExecutorProfiles(profiles_path=path)
    assert p.load_error is not None and "profiles.json" in p.load_error
    assert p.profiles_json() == BUILTIN_PROFILES


def test_command_actually_runs_with_the_prompt_on_stdin(tmp_path: Path) -> None:
    """A base_command_override agent receives the stream-json prompt on stdin (the real spawn contract)."""
    agent = tmp_path / "agent.py"
    agent.write_text(
        "import json, sys\n"
        "msg = json.loads(sys.stdin.readline())\n"
        "print(json.dumps({'argv': sys.argv[1:], 'prompt': msg['message']['content']}))\n"
    )
    p = ExecutorProfiles(
        settings_overrides={
            "CLAUDE_CODE": {"DEFAULT": {"base_command_override": f"{sys.executable} {agent}"}}
        }
    )
    pid = p.validate_profile_id("CLAUDE_CODE")
    argv, via_stdin = p.build_command(pid, follow_up_session_id="s-9")
    assert via_stdin
    out = subprocess.run(
        argv, input=p.stdin_payload(pid, "héllo"), capture_output=True, check=True, timeout=30
    )
    result = json.loads(out.stdout)
    assert result["prompt"] == "héllo"
    assert result["argv"][-2:] == ["--resume", "s-9"]
