"""The in-process event bus: topics, cross-thread publishing, bounded queues with resync, SSE history."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from anyon.services.board.events import (
    SSE_JSON_PATCH,
    BusEvent,
    EventBus,
    Resync,
    drafts_topic,
    format_sse,
    processes_topic,
    tasks_topic,
)
from anyon.services.logs import jsonpatch as jp


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


async def next_event(sub, timeout: float = 2.0) -> BusEvent:  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(sub.__anext__(), timeout)


def test_topics_and_filters() -> None:
    async def main() -> None:
        bus = EventBus()
        p1 = bus.subscribe(tasks_topic("p1"))
        all_tasks = bus.subscribe("tasks")
        procs = bus.subscribe([processes_topic("a1"), drafts_topic("p1")])
        everything = bus.subscribe()
        bus.publish(tasks_topic("p1"), jp.task_upsert_ops({"id": "t1", "project_id": "p1"}, op="add"))
        bus.publish(tasks_topic("p2"), jp.task_upsert_ops({"id": "t2", "project_id": "p2"}))
        bus.publish(processes_topic("a1"), jp.process_ops({"id": "e1"}))
        bus.publish(drafts_topic("p1"), jp.draft_ops("a1", "retry", None))
        assert [e.ops[0]["path"] for e in p1.drain()] == ["/tasks/t1"]
        assert [e.ops[0]["path"] for e in all_tasks.drain()] == ["/tasks/t1", "/tasks/t2"]
        assert [e.topic for e in procs.drain()] == [processes_topic("a1"), drafts_topic("p1")]
        evs = everything.drain()
        assert [e.id for e in evs] == [1, 2, 3, 4]
        assert evs[0].ws_frame() == jp.patch_frame(evs[0].ops)
        assert json.loads(evs[0].data) == evs[0].ops
        only_add = bus.subscribe(lambda e: e.ops[0]["op"] == "add")
        bus.publish(tasks_topic("p1"), jp.task_remove_ops("t1"))
        bus.publish(tasks_topic("p1"), jp.task_upsert_ops({"id": "t3"}, op="add"))
        assert [e.ops[0]["path"] for e in only_add.drain()] == ["/tasks/t3"]

    run(main())


def test_bad_publish_arguments() -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="topic"):
        bus.publish("tasks", [])
    with pytest.raises(ValueError, match="event name"):
        bus.publish("tasks:p", [], event="bogus")
    with pytest.raises(ValueError):
        EventBus(queue_size=0)


def test_live_iteration_and_close_ends_iterator() -> None:
    async def main() -> None:
        bus = EventBus()
        sub = bus.subscribe("tasks")
        received: list[str] = []

        async def consume() -> None:
            async for ev in sub:
                received.append(ev.ops[0]["path"])

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        for i in range(5):
            bus.publish(tasks_topic("p"), jp.task_upsert_ops({"id": f"t{i}"}))
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        sub.close()
        await asyncio.wait_for(task, 2)
        assert received == [f"/tasks/t{i}" for i in range(5)]
        assert bus.subscriber_count == 0
        async with bus.subscribe() as s2:
            assert bus.subscriber_count == 1
        assert s2.closed and bus.subscriber_count == 0

    run(main())


def test_publish_from_real_threads_is_delivered_in_order_on_the_loop() -> None:
    async def main() -> None:
        bus = EventBus()
        sub = bus.subscribe(queue_size=10_000)
        loop_thread = threading.get_ident()
        delivered_on: set[int] = set()
        original = sub._offer

        def spy(ev: BusEvent) -> None:
            delivered_on.add(threading.get_ident())
            original(ev)

        sub._offer = spy  # type: ignore[method-assign]

        def worker(n: int) -> None:
            for i in range(500):
                bus.publish(tasks_topic(f"p{n}"), jp.task_upsert_ops({"id": f"{n}-{i}"}))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        got: list[BusEvent] = []
        while len(got) < 2000:
            got.append(await next_event(sub))
        assert delivered_on == {loop_thread}
        assert [e.id for e in got] == list(range(1, 2001))
        for n in range(4):  # per-thread order is kept
            mine = [e.ops[0]["path"] for e in got if e.topic == tasks_topic(f"p{n}")]
            assert mine == [f"/tasks/{n}-{i}" for i in range(500)]

    run(main())


def test_event_published_in_a_worker_thread_arrives_before_the_awaiting_handler_resumes() -> None:
    """The REST create path: DB work + publish in a thread, then the handler answers."""

    async def main() -> None:
        bus = EventBus()
        sub = bus.subscribe(tasks_topic("p"))

        def create_task_in_db() -> str:
            bus.publish(tasks_topic("p"), jp.task_upsert_ops({"id": "new"}, op="add"))
            return "new"

        task_id = await asyncio.to_thread(create_task_in_db)
        # no await between the thread's completion and this check: the event is already queued
        assert sub.pending == 1
        assert sub.drain()[0].ops[0]["path"] == f"/tasks/{task_id}"

    run(main())


def test_slow_subscriber_is_resynced_and_never_blocks_producer_or_others() -> None:
    async def main() -> None:
        bus = EventBus(queue_size=50)
        slow = bus.subscribe("tasks")
        fast = bus.subscribe("tasks")
        fast_got: list[int] = []

        async def fast_consumer() -> None:
            async for ev in fast:
                fast_got.append(ev.id)

        consumer = asyncio.create_task(fast_consumer())
        await asyncio.sleep(0)
        for i in range(1000):  # the producer never awaits a subscriber
            bus.publish(tasks_topic("p"), jp.task_upsert_ops({"id": str(i)}))
            if i % 10 == 0:
                await asyncio.sleep(0)  # lets the fast consumer run; the slow one never does
            assert slow.pending <= 50  # memory bounded at every step
        await asyncio.sleep(0.01)
        assert len(fast_got) == 1000 and fast_got == sorted(fast_got)
        assert slow.lagged and slow.pending == 0
        with pytest.raises(Resync) as info:
            await next_event(slow)
        assert info.value.dropped > 0
        # re-armed: the endpoint sends a fresh snapshot and keeps iterating, seeing new events
        assert not slow.lagged
        bus.publish(tasks_topic("p"), jp.task_upsert_ops({"id": "after"}))
        ev = await next_event(slow)
        assert ev.ops[0]["path"] == "/tasks/after"
        fast.close()
        await consumer

    run(main())


def test_history_ring_and_sse_formatting() -> None:
    async def main() -> None:
        bus = EventBus(history_size=3)
        for i in range(5):
            bus.publish(tasks_topic("p"), jp.task_upsert_ops({"id": str(i)}))
        hist = bus.history()
        assert [e.id for e in hist] == [3, 4, 5]
        assert [e.id for e in bus.history(after_id=4)] == [5]
        history, sub = bus.subscribe_with_history(after_id=3)
        assert [e.id for e in history] == [4, 5]
        bus.publish(processes_topic("a"), [], event="finished")
        live = await next_event(sub)
        assert live.id == 6 and live.data == ""
        sse = hist[0].sse()
        assert sse.startswith("id: 3\nevent: json_patch\ndata: [")
        assert sse.endswith("\n\n")
        assert json.loads(sse.split("data: ", 1)[1]) == hist[0].ops
        assert format_sse("stdout", "a\nb") == "event: stdout\ndata: a\ndata: b\n\n"
        bus.publish(processes_topic("a"), [], event="stdout", text="line")
        out = await next_event(sub)
        assert out.event == "stdout" and out.data == "line"
        assert hist[0].event == SSE_JSON_PATCH

    run(main())


def test_publish_before_any_loop_only_records_history() -> None:
    bus = EventBus()
    bus.publish(tasks_topic("p"), jp.task_remove_ops("x"))
    assert [e.ops for e in bus.history()] == [[{"op": "remove", "path": "/tasks/x"}]]

    async def main() -> None:
        sub = bus.subscribe()
        bus.publish(tasks_topic("p"), jp.task_remove_ops("y"))
        assert (await next_event(sub)).id == 2

    run(main())


def test_subscribe_on_a_foreign_loop_is_refused() -> None:
    bus = EventBus()

    async def first() -> None:
        bus.subscribe()

    async def second() -> None:
        with pytest.raises(RuntimeError, match="event loop"):
            bus.subscribe()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(first())
        asyncio.run(second())
    finally:
        loop.close()
