"""Log normalisers over recorded transcripts: entries, tool status updates, session id, summary, patches."""

from __future__ import annotations

import json
from pathlib import Path

from anyon.services.logs import jsonpatch as jp
from anyon.services.normalizer import (
    AcpNormalizer,
    ClaudeStreamJsonNormalizer,
    CodexAppServerNormalizer,
    PlainTextNormalizer,
    normalizer_for,
    setup_required_entry,
)

FIXTURES = Path(__file__).parent / "fixtures"
WORKTREE = "/work/wt/attempt-7f3a"
SESSION = "3b1f8c2e-6d4a-4f0e-9a71-2c5d8e9f0a13"


def fixed_clock() -> str:
    return "2025-11-12T03:04:05.678Z"


def transcript(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def normalize_fixture(
    name: str, chunk_size: int | None = None
) -> tuple[ClaudeStreamJsonNormalizer, list[dict]]:
    norm = ClaudeStreamJsonNormalizer(worktree=WORKTREE, clock=fixed_clock)
    text = transcript(name)
    chunks = (
        [text] if chunk_size is None else [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]
    )
    ops: list[dict] = []
    for chunk in chunks:
        ops += norm.feed_stdout(chunk)
    ops += norm.finish()
    return norm, ops


def test_claude_transcript_entries() -> None:
    norm, _ops = normalize_fixture("claude_stream_fix_typo.jsonl")
    types = [e["entry_type"]["type"] for e in norm.entries]
    assert types == [
        "system_message",  # the npm warning line (not JSON)
        "system_message",  # init
        "thinking",
        "assistant_message",
        *["tool_use"] * 9,
        "assistant_message",
    ]
    assert norm.entries[1]["content"] == "System initialized with model: claude-sonnet-4-5-20250929"
    assert norm.session_id == SESSION
    tools = {e["entry_type"]["tool_name"]: e for e in norm.entries if e["entry_type"]["type"] == "tool_use"}
    read = tools["Read"]["entry_type"]
    assert read["action_type"] == {"action": "file_read", "path": "src/greet.py"}
    assert read["status"] == {"status": "success"}
    edit = tools["Edit"]["entry_type"]["action_type"]
    assert edit["action"] == "file_edit" and edit["path"] == "src/greet.py"
    diff = edit["changes"][0]["unified_diff"]
    assert (
        "--- a/src/greet.py" in diff
        and "-    return 'Helo, ' + name" in diff
        and "+    return 'Hello, ' + name" in diff
    )
    write = tools["Write"]["entry_type"]["action_type"]
    assert write["changes"][0]["action"] == "write" and write["path"] == "tests/test_greet.py"
    assert tools["Grep"]["entry_type"]["action_type"] == {"action": "search", "query": "Helo"}
    assert (
        tools["WebFetch"]["entry_type"]["action_type"]["url"]
        == "https://docs.python.org/3/library/string.html"
    )
    todo = tools["TodoWrite"]["entry_type"]["action_type"]
    assert todo["action"] == "todo_management" and todo["operation"] == "write"
    assert todo["todos"][0] == {
        "content": "Fix the typo in greet()",
        "status": "in_progress",
        "priority": None,
    }
    mcp = tools["mcp__tracker__add_comment"]["entry_type"]
    assert mcp["action_type"]["result"] == {"type": {"type": "markdown"}, "value": "comment 7 added"}
    assert tools["mcp__tracker__add_comment"]["content"] == "mcp: tracker:add_comment"
    bash = [e for e in norm.entries if e["entry_type"].get("tool_name") == "Bash"]
    failing, passing = bash
    assert failing["entry_type"]["status"] == {"status": "failed"}
    assert failing["entry_type"]["action_type"]["result"]["exit_status"] == {"type": "exit_code", "code": 4}
    assert "no tests ran" in failing["entry_type"]["action_type"]["result"]["output"]
    assert passing["entry_type"]["status"] == {"status": "success"}
    assert passing["entry_type"]["action_type"]["result"] == {
        "exit_status": {"type": "success", "success": True},
        "output": ".\n1 passed in 0.02s",
    }
    assert passing["content"] == "python -m pytest -q"
    assert (
        norm.summary == 'Fixed the typo in `greet()` ("Helo" → "Hello") and added a test; the suite passes.'
    )
    assert all(e["timestamp"] == fixed_clock() and e["metadata"] is None for e in norm.entries)


def test_patches_build_the_same_document_and_update_tool_status_in_place() -> None:
    norm, ops = normalize_fixture("claude_stream_fix_typo.jsonl")
    adds = [op for op in ops if op["op"] == "add"]
    replaces = [op for op in ops if op["op"] == "replace"]
    assert [op["path"] for op in adds] == [f"/entries/{i}" for i in range(len(norm.entries))]
    assert len(replaces) == 9  # every tool call got its result
    first_read = next(op for op in adds if op["value"]["content"]["entry_type"].get("tool_name") == "Read")
    assert first_read["value"]["content"]["entry_type"]["status"] == {"status": "created"}  # sent unchanged
    doc = jp.apply_ops({"entries": []}, ops)
    assert doc["entries"] == [jp.normalized_entry_value(e) for e in norm.entries]
    frame = jp.patch_frame(ops[:1])
    assert json.loads(frame)["JsonPatch"][0]["value"]["type"] == "NORMALIZED_ENTRY"


def test_chunking_does_not_change_the_result() -> None:
    whole, whole_ops = normalize_fixture("claude_stream_fix_typo.jsonl")
    for size in (1, 7, 300):
        chunked, chunked_ops = normalize_fixture("claude_stream_fix_typo.jsonl", chunk_size=size)
        assert chunked_ops == whole_ops
        assert chunked.session_id == whole.session_id


def test_error_result_and_stderr() -> None:
    norm, _ops = normalize_fixture("claude_stream_error_result.jsonl")
    assert [e["entry_type"]["type"] for e in norm.entries] == [
        "system_message",
        "assistant_message",
        "error_message",
    ]
    assert norm.entries[-1]["entry_type"]["error_type"] == {"type": "other"}
    assert norm.entries[-1]["content"] == "error_max_turns"
    assert norm.summary == "Let me check the build."
    assert norm.session_id == "9d0e7a51-1c2b-4e3f-8a6d-5f4e3d2c1b0a"
    ops = norm.feed_stderr("Error: ANTHROPIC_API_KEY is not set\n\n")
    assert len(ops) == 1 and ops[0]["path"] == f"/entries/{len(norm.entries) - 1}"
    assert ops[0]["value"]["content"]["entry_type"] == {  # no credentials: the login is the fix
        "type": "error_message",
        "error_type": {"type": "setup_required"},
    }
    assert "agent login of the web UI" in ops[0]["value"]["content"]["content"]
    ops = norm.feed_stderr("Error: the build broke\n")
    assert ops[0]["value"]["content"]["entry_type"]["error_type"] == {"type": "other"}


def test_unterminated_last_line_is_processed_on_finish() -> None:
    norm = ClaudeStreamJsonNormalizer(clock=fixed_clock)
    line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "done"}]}})
    assert norm.feed_stdout(line) == []
    ops = norm.finish()
    assert len(ops) == 1 and norm.summary == "done"


def test_malformed_and_unknown_lines_never_raise() -> None:
    norm = ClaudeStreamJsonNormalizer(clock=fixed_clock)
    lines = [
        "[1,2]",
        '{"type":"assistant","message":null}',
        '{"type":"assistant","message":{"content":"text not list"}}',
        '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"nope","content":"x"}]}}',
        '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t","name":"Read","input":null}]}}',
        '{"type":"brand_new_kind"}',
        '{"type":"system","subtype":"compact_boundary"}',
        '{"type":"result","subtype":"success","result":null}',
    ]
    norm.feed_stdout("\n".join(lines) + "\n")
    assert [e["entry_type"]["type"] for e in norm.entries] == ["system_message", "tool_use"]
    assert norm.entries[1]["entry_type"]["action_type"] == {"action": "file_read", "path": ""}


def test_summary_is_capped_at_4096_characters() -> None:
    norm = PlainTextNormalizer(clock=fixed_clock)
    norm.feed_stdout("x" * 10_000 + "\n")
    assert norm.summary is not None and len(norm.summary) == 4096
    assert len(norm.entries[0]["content"]) == 10_000  # the entry itself is complete


def test_plain_text_normalizer_for_other_executors() -> None:
    norm = normalizer_for("AN_EXECUTOR_WITHOUT_A_PARSER", clock=fixed_clock)
    assert isinstance(norm, PlainTextNormalizer)
    ops = norm.replay([("stdout", "hello\nwor"), ("stderr", "warn\n"), ("stdout", "ld\n\n"), ("other", "x")])
    assert [(e["entry_type"]["type"], e["content"]) for e in norm.entries] == [
        ("assistant_message", "hello"),
        ("error_message", "warn"),
        ("assistant_message", "world"),
    ]
    assert [op["path"] for op in ops] == ["/entries/0", "/entries/1", "/entries/2"]
    assert norm.summary == "world" and norm.session_id is None
    assert isinstance(normalizer_for("CLAUDE_CODE"), ClaudeStreamJsonNormalizer)
    assert isinstance(normalizer_for("CODEX"), CodexAppServerNormalizer)
    assert isinstance(normalizer_for("GEMINI"), AcpNormalizer)
    assert isinstance(normalizer_for("QWEN_CODE"), AcpNormalizer)


def test_setup_required_entry_shape() -> None:
    e = setup_required_entry("claude not found", timestamp=fixed_clock())
    assert e == {
        "timestamp": fixed_clock(),
        "entry_type": {"type": "error_message", "error_type": {"type": "setup_required"}},
        "content": "claude not found",
        "metadata": None,
    }
