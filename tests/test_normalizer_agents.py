"""The output-only agents' normalisers (Amp, Cursor Agent, OpenCode, Copilot) and failures.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from anyon.services.logs.jsonpatch import apply_ops
from anyon.services.normalizer import COMMAND_PREFIX, normalizer_for
from anyon.services.normalizer.failures import diagnose, is_npm_notice


def conversation(executor: str, stdout: list[Any], stderr: list[str] = (), worktree: str = "/w") -> Any:
    normalizer = normalizer_for(executor, worktree=worktree, clock=lambda: "T")
    lines = [json.dumps(x) if not isinstance(x, str) else x for x in stdout]
    ops = normalizer.feed_stdout("".join(f"{line}\n" for line in lines))
    ops += normalizer.feed_stderr("".join(f"{line}\n" for line in stderr))
    ops += normalizer.finish()
    doc = apply_ops({"entries": []}, ops)
    return (
        normalizer,
        [(e["content"]["entry_type"]["type"], e["content"]["content"]) for e in doc["entries"]],
        doc,
    )


def test_the_command_line_is_a_system_entry_for_every_agent() -> None:
    for executor in ("CLAUDE_CODE", "AMP", "CURSOR_AGENT", "OPENCODE", "COPILOT", "GEMINI"):
        _n, entries, _ = conversation(executor, [f"{COMMAND_PREFIX}amp --execute"])
        assert entries[0] == ("system_message", "Running `amp --execute`"), executor


def test_cursor_joins_streamed_pieces_and_completes_tools() -> None:
    started = {"shellToolCall": {"args": {"command": "ls"}}}
    done = {
        "shellToolCall": {"args": {"command": "ls"}, "result": {"success": {"stdout": "a\n", "exitCode": 0}}}
    }
    normalizer, entries, doc = conversation(
        "CURSOR_AGENT",
        [
            {"type": "system", "subtype": "init", "session_id": "s-1", "model": "GPT-5"},
            {"type": "assistant", "message": {"content": [{"type": "text", "text": "Hel"}]}},
            {"type": "assistant", "message": {"content": [{"type": "text", "text": "lo"}]}},
            {"type": "tool_call", "subtype": "started", "call_id": "c", "tool_call": started},
            {"type": "tool_call", "subtype": "completed", "call_id": "c", "tool_call": done},
            {
                "type": "tool_call",
                "subtype": "started",
                "call_id": "r",
                "tool_call": {"readToolCall": {"args": {"path": "/w/src/a.py"}}},
            },
            {"type": "result", "subtype": "success", "is_error": False},
        ],
    )
    assert normalizer.session_id == "s-1" and normalizer.summary == "Hello"
    assert entries[:3] == [
        ("system_message", "System initialized with model: GPT-5"),
        ("assistant_message", "Hello"),
        ("tool_use", "`ls`"),
    ]
    tool = doc["entries"][2]["content"]["entry_type"]
    assert tool["status"] == {"status": "success"}
    assert tool["action_type"]["result"] == {"exit_status": {"type": "exit_code", "code": 0}, "output": "a"}
    assert doc["entries"][3]["content"]["entry_type"]["action_type"] == {
        "action": "file_read",
        "path": "src/a.py",
    }


def test_cursor_sign_in_prompt_is_a_login_failure() -> None:
    normalizer, _entries, doc = conversation("CURSOR_AGENT", ["\x1b[2mPress any key to sign in...\x1b[0m"])
    assert normalizer.failure is not None and normalizer.failure.kind == "login"
    assert doc["entries"][0]["content"]["entry_type"]["error_type"] == {"type": "setup_required"}


def test_opencode_events_logs_and_errors() -> None:
    running = {"tool": "bash", "callID": "k", "state": {"status": "running", "input": {"command": "make"}}}
    failed = {
        "tool": "bash",
        "callID": "k",
        "state": {"status": "error", "input": {"command": "make"}, "error": "boom"},
    }
    normalizer, entries, doc = conversation(
        "OPENCODE",
        [
            {"type": "step_start", "sessionID": "ses_1", "part": {}},
            {"type": "tool_use", "sessionID": "ses_1", "part": running},
            {"type": "tool_use", "sessionID": "ses_1", "part": failed},
            {"type": "text", "sessionID": "ses_1", "part": {"text": "Done."}},
        ],
        [
            "timestamp=1 level=INFO run=x message=created id=ses_1",
            'timestamp=2 level=ERROR run=x message="Failed to fetch models.dev" cause="offline"',
            "\x1b[0m> build · big-pickle\x1b[0m",
        ],
    )
    assert normalizer.session_id == "ses_1" and normalizer.failure is None
    assert entries == [
        ("tool_use", "make"),
        ("assistant_message", "Done."),
        ("system_message", "Failed to fetch models.dev: offline"),
        ("system_message", "> build · big-pickle"),
    ]
    tool = doc["entries"][0]["content"]["entry_type"]
    assert tool["status"] == {"status": "failed"} and tool["action_type"]["result"]["output"] == "boom"


def test_opencode_stream_error_without_network_is_a_failure() -> None:
    line = (
        'timestamp=1 level=ERROR message="stream error" error.error="AI_APICallError: Cannot connect to API"'
    )
    normalizer, entries, _ = conversation("OPENCODE", [], [line])
    assert normalizer.failure is not None and normalizer.failure.kind == "network"
    assert entries[0][0] == "error_message" and "cannot reach its model service" in entries[0][1]


def test_copilot_paragraphs_grow_in_place_and_colours_go() -> None:
    normalizer, entries, _ = conversation("COPILOT", ["\x1b[1mFirst\x1b[0m line", "second line", "", "Next."])
    assert entries == [("assistant_message", "First line\nsecond line"), ("assistant_message", "Next.")]
    assert normalizer.summary == "Next."


def test_amp_reads_claude_stream_json_and_its_login_prompt() -> None:
    text = {"type": "assistant", "message": {"content": [{"type": "text", "text": "Hi"}]}}
    normalizer, entries, _ = conversation(
        "AMP", [{"type": "system", "subtype": "init", "session_id": "T-1"}, text]
    )
    assert normalizer.session_id == "T-1" and ("assistant_message", "Hi") in entries
    normalizer, entries, _ = conversation("AMP", ["No API key found. Starting login flow..."])
    assert normalizer.failure is not None and normalizer.failure.kind == "login"
    assert "agent login of the web UI" in entries[0][1]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("Invalid API key · Please run /login", "login"),
        ("Error: No authentication information found.", "login"),
        ("npm error code E404", "not_installed"),
        ("sh: 1: amp: not found", "not_installed"),
        ("npm error code ENOTFOUND", "registry"),
        ("npm ERR! network request to https://registry.npmjs.org/x failed", "registry"),
        ("Error: getaddrinfo ENOTFOUND api.anthropic.com", "network"),
        ("TypeError: fetch failed", "network"),
        ("Request failed with status code 401", "login"),
        ("GEMINI_API_KEY is not set", "login"),
    ],
)
def test_known_failures_are_read(line: str, kind: str) -> None:
    found = diagnose("CODEX", line)
    assert found is not None and found.kind == kind, found


@pytest.mark.parametrize(
    "line",
    [
        "npm notice New major version of npm available! 10.8.2 -> 11.6.0",
        "npm warn deprecated inflight@1.0.6: This module is not supported",
        "Reading src/login.ts",
        "Using OPENAI_API_KEY from the environment",
        "Checked 401 files in 3 s",
        "Error: file not found: config.yaml",
        "",
    ],
)
def test_notices_and_ordinary_lines_are_not_failures(line: str) -> None:
    assert diagnose("AMP", line) is None


def test_npm_notice_is_a_notice() -> None:
    assert is_npm_notice("npm notice Run `npm install -g npm@11.6.0` to update!")
    assert not is_npm_notice("npm error code E404")


def test_replaying_gives_the_same_entries_as_live() -> None:
    lines = "".join(
        json.dumps(x) + "\n"
        for x in (
            {"type": "assistant", "message": {"content": [{"type": "text", "text": "a"}]}},
            {"type": "assistant", "message": {"content": [{"type": "text", "text": "b"}]}},
        )
    )
    live = normalizer_for("CURSOR_AGENT", clock=lambda: "T", keep_entries=False)
    ops = [op for ch in (lines[:7], lines[7:40], lines[40:]) for op in live.feed_stdout(ch)] + live.finish()
    replayed = normalizer_for("CURSOR_AGENT", clock=lambda: "T")
    replayed.replay([("stdout", lines)])
    assert apply_ops({"entries": []}, ops)["entries"] == [
        {"type": "NORMALIZED_ENTRY", "content": e} for e in replayed.entries
    ]


def test_claude_without_credentials_points_at_the_login() -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "result": "Invalid API key · Please run /login",
    }
    normalizer, entries, doc = conversation(
        "CLAUDE_CODE", [result], ["npm notice New minor version of npm available!"]
    )
    assert entries[0][0] == "error_message" and "agent login of the web UI" in entries[0][1]
    assert doc["entries"][0]["content"]["entry_type"]["error_type"] == {"type": "setup_required"}
    assert entries[1] == ("system_message", "npm notice New minor version of npm available!")
    assert normalizer.failure is not None and normalizer.failure.kind == "login"


def test_agents_without_a_parser_still_read_their_stderr_and_scripts_do_not() -> None:
    _n, entries, _ = conversation("GEMINI", [], ["npm error code E404"])
    assert "Gemini CLI is not installed" in entries[0][1]
    for executor, name in [("QWEN_CODE", "Qwen Code"), ("CODEX", "Codex")]:  # the protocol agents too
        _n, entries, _ = conversation(executor, [], ["npm error code E404"])
        assert f"{name} is not installed" in entries[0][1], executor
    _n, entries, _ = conversation("SCRIPT", [], ["npm error code E404"])
    assert entries == [("error_message", "npm error code E404")]


def test_long_ordinary_lines_are_no_failure() -> None:
    """Every stderr and non-JSON line is read for failures: an ordinary line must cost next to nothing."""
    import time

    line = "y" * 4095
    started = time.perf_counter()
    for _ in range(2000):
        assert diagnose("CLAUDE_CODE", line) is None
    per_line = (time.perf_counter() - started) / 2000
    print(f"failures.diagnose: {per_line * 1e6:.1f} µs per 4 KiB line")
