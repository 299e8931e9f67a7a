"""The per-execution message store: replay then live, many readers, bounded memory with a spill file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from anyon.services.logs import jsonpatch as jp
from anyon.services.logs.logmsg import LogMsg, LogsEvicted
from anyon.services.logs.msgstore import MsgStore
from anyon.services.logs.spill import FileSpill


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


async def collect(reader) -> list[LogMsg]:  # type: ignore[no-untyped-def]
    out: list[LogMsg] = []
    async for msg in reader:
        out.append(msg)
    return out


def test_replay_then_live_then_finished() -> None:
    async def main() -> None:
        store = MsgStore()
        store.push_stdout("one\n")
        store.push_stderr("two\n")
        early = asyncio.create_task(collect(store.subscribe()))
        await asyncio.sleep(0.01)
        store.push_patch([jp.entry_add(0, {"x": 1})])
        store.push_session_id("sess-1")
        store.push_stdout("three\n")
        store.finish()
        store.finish()  # idempotent
        late = await collect(store.subscribe())  # a reader that comes after the end replays everything
        got = await early
        for msgs in (got, late):
            assert [m.kind for m in msgs] == [
                "stdout",
                "stderr",
                "json_patch",
                "session_id",
                "stdout",
                "finished",
            ]
            assert [m.raw_index for m in msgs if m.kind in ("stdout", "stderr")] == [0, 1, 2]
        assert store.session_id == "sess-1"
        with pytest.raises(RuntimeError, match="finished"):
            store.push_stdout("late")

    run(main())


def test_frames_and_kind_filter() -> None:
    async def main() -> None:
        store = MsgStore()
        store.push_stdout("a")
        store.push_patch([jp.entry_add(0, jp.normalized_entry_value({"content": "hi"}))])
        store.push_stderr("b")
        store.finish()
        raw = await collect(store.subscribe(kinds={"stdout", "stderr"}))
        assert [m.ws_frame() for m in raw] == [
            '{"JsonPatch":[{"op":"add","path":"/entries/0","value":{"type":"STDOUT","content":"a"}}]}',
            '{"JsonPatch":[{"op":"add","path":"/entries/1","value":{"type":"STDERR","content":"b"}}]}',
            '{"finished":true}',
        ]
        norm = await collect(store.subscribe(kinds={"json_patch"}))
        assert json.loads(norm[0].ws_frame())["JsonPatch"][0]["value"]["type"] == "NORMALIZED_ENTRY"
        assert norm[-1].kind == "finished"
        with pytest.raises(ValueError, match="kinds"):
            store.subscribe(kinds={"bogus"})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="session_id"):
            LogMsg(0, "session_id", text="s").ws_frame()

    run(main())


def test_evicted_range_without_spill_raises_for_the_db_fallback() -> None:
    async def main() -> None:
        store = MsgStore(byte_cap=2000)
        for i in range(100):
            store.push_stdout(f"line {i}\n")
        assert store.memory_bytes <= 2000
        assert store.window_start > 0
        reader = store.subscribe()
        with pytest.raises(LogsEvicted) as info:
            await reader.__anext__()
        assert info.value.cursor == 0 and info.value.window_start == store.window_start
        # a reader starting inside the window is fine
        store.finish()
        first = store.window_start
        msgs = await collect(store.subscribe(from_seq=first))
        assert msgs[0].text == f"line {first}\n" and msgs[-1].kind == "finished"

    run(main())


def test_spill_lets_a_slow_reader_replay_everything_with_bounded_memory(tmp_path: Path) -> None:
    async def main() -> None:
        spill_path = tmp_path / "proc.spill.jsonl"
        store = MsgStore(byte_cap=64 * 1024, spill=FileSpill(spill_path))
        reader = store.subscribe()
        # the producer never yields to the reader: everything beyond the cap goes to the spill
        for i in range(20_000):
            store.push_stdout(f"line {i}\n") if i % 3 else store.push_stderr(f'érr {i} "q"\n')
            assert store.memory_bytes <= 64 * 1024 + 200
        store.finish()
        assert spill_path.stat().st_size > 0
        msgs = await collect(reader)
        assert len(msgs) == 20_001
        assert [m.raw_index for m in msgs[:-1]] == list(range(20_000))
        assert msgs[5].text == "line 5\n" and msgs[3].kind == "stderr" and msgs[3].text == 'érr 3 "q"\n'
        # a reader that starts in the middle of the spilled range
        mid = await collect(store.subscribe(from_seq=12_345, kinds={"stdout"}))
        assert mid[0].text == "line 12346\n"  # 12345 is divisible by 3: a stderr line, filtered out
        store.close()
        assert not spill_path.exists()

    run(main())


def test_fifty_readers_of_two_hundred_thousand_lines_get_every_line(tmp_path: Path) -> None:
    async def main() -> None:
        store = MsgStore(byte_cap=4 * 1024 * 1024, spill=FileSpill(tmp_path / "s.jsonl"))
        lines = 200_000
        counts: list[int] = []

        async def reader_task() -> None:
            reader = store.subscribe(kinds={"stdout", "stderr"})
            expected = 0
            while True:
                batch = await reader.next_batch(4096)
                if not batch:
                    break
                lines_in_batch = [m for m in batch if m.kind != "finished"]
                if lines_in_batch:  # in order, no gap, no duplicate (checked at the batch edges)
                    assert lines_in_batch[0].raw_index == expected
                    assert lines_in_batch[-1].raw_index == expected + len(lines_in_batch) - 1
                    lines_in_batch[-1].ws_frame()  # what an endpoint sends; cached after the first reader
                    expected += len(lines_in_batch)
            counts.append(expected)

        readers = [asyncio.create_task(reader_task()) for _ in range(50)]
        await asyncio.sleep(0)
        blocked_for = 0.0
        loop = asyncio.get_running_loop()
        for i in range(lines):
            t0 = loop.time()
            store.push_stdout(f"output line {i} " + "x" * 40 + "\n")
            blocked_for = max(blocked_for, loop.time() - t0)
            if i % 500 == 0:
                await asyncio.sleep(0)  # a real pump awaits the pipe between chunks
        store.finish()
        await asyncio.gather(*readers)
        assert counts == [lines] * 50
        assert store.memory_bytes <= 4 * 1024 * 1024
        print(f"max single push time {blocked_for * 1e6:.0f} us")
        store.close()

    run(main())


def test_reader_cancellation_does_not_disturb_others() -> None:
    async def main() -> None:
        store = MsgStore()
        a = asyncio.create_task(collect(store.subscribe()))
        b = asyncio.create_task(collect(store.subscribe()))
        await asyncio.sleep(0.01)
        a.cancel()
        await asyncio.sleep(0)
        store.push_stdout("x")
        store.finish()
        got = await b
        assert [m.kind for m in got] == ["stdout", "finished"]
        with pytest.raises(asyncio.CancelledError):
            await a

    run(main())


def test_logmsg_json_round_trip() -> None:
    for msg in (
        LogMsg(3, "stdout", text="o", raw_index=1),
        LogMsg(4, "json_patch", ops=[jp.entry_add(0, 1)]),
        LogMsg(5, "session_id", text="s"),
        LogMsg(6, "finished"),
    ):
        back = LogMsg.from_json(json.loads(jp.dumps(msg.to_json())))
        assert (back.seq, back.kind, back.text, back.ops, back.raw_index) == (
            msg.seq,
            msg.kind,
            msg.text,
            msg.ops,
            msg.raw_index,
        )
    with pytest.raises(ValueError):
        LogMsg.from_json({"seq": 1, "Other": 2})


def test_close_without_finish_releases_waiting_readers() -> None:
    async def main() -> None:
        store = MsgStore()
        waiting = asyncio.create_task(collect(store.subscribe()))
        await asyncio.sleep(0.01)
        store.close()
        got = await asyncio.wait_for(waiting, 2)
        assert [m.kind for m in got] == ["finished"]

    run(main())
