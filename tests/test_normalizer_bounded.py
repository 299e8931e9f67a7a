"""A live normaliser keeps only what a later line may update, yet emits exactly the same patches."""

from __future__ import annotations

from pathlib import Path

import pytest

from anyon.services.normalizer import normalizer_for

FIXTURES = Path(__file__).parent / "fixtures"


def _clock() -> str:
    return "2025-01-01T00:00:00.000Z"


@pytest.mark.parametrize("transcript", sorted(FIXTURES.glob("*.jsonl")), ids=lambda p: p.name)
def test_live_and_replay_emit_the_same_ops(transcript: Path) -> None:
    text = transcript.read_text()
    full = normalizer_for("CLAUDE_CODE", clock=_clock)
    live = normalizer_for("CLAUDE_CODE", clock=_clock, keep_entries=False)
    chunks = [text[i : i + 97] for i in range(0, len(text), 97)]
    full_ops = [op for chunk in chunks for op in full.feed_stdout(chunk)] + full.finish()
    live_ops = [op for chunk in chunks for op in live.feed_stdout(chunk)] + live.finish()
    assert live_ops == full_ops and live_ops
    assert live.entries == [] and live.entry_count == len(full.entries)
    assert live.summary == full.summary and live.session_id == full.session_id


def test_live_memory_does_not_grow_with_output() -> None:
    live = normalizer_for("GEMINI", keep_entries=False)
    for i in range(20000):
        live.feed_stdout(f"line {i} " + "x" * 200 + "\n")
    assert live.entry_count == 20000 and live.entries == [] and not live._pending
