"""In-process event bus: every committed change to tasks, attempts, processes and drafts, as JSON Patch ops.

Why a bus and not polling: the UI shows the board, the timeline and the drafts *only* from WebSocket state
streams (spec anyon-api.md §2.2, §2.3, §2.8, §9). Whatever code path commits a change publishes the ops of
spec §2.1 once, and every stream that cares receives them at once.

Threads. Database work runs in worker threads, so :meth:`EventBus.publish` may be called from any
thread. Delivery always happens on the event loop the bus is bound to (``loop.call_soon_threadsafe``), in
publish order. A REST handler that awaits a worker thread which published before returning has its event
delivered to the subscribers *before* the handler resumes: the call_soon_threadsafe of the publish is queued
ahead of the completion of the handler's future. That is what makes "a task created through the REST API
appears on the stream before the create call returns" hold.

Backpressure policy (issue: "a slow client never blocks the producer or other clients and never grows server
memory without bound"):

* every subscriber has its own bounded queue (``queue_size`` events); publishing never waits on a subscriber;
* when a subscriber's queue is full and another event arrives, the subscriber is marked *lagged*: its queue is
  emptied at once (memory is freed, not kept for it) and it receives nothing more until it has consumed the
  signal;
* its iterator then raises :class:`Resync` exactly once. The state-stream endpoint answers by sending a fresh
  snapshot (``replace /tasks`` …) and keeps iterating; the subscription is already re-armed when ``Resync`` is
  raised, so taking the snapshot *after* catching it misses nothing (ops that arrive in between may be applied
  twice, which is harmless: they are idempotent add/replace/remove of whole records). An endpoint that cannot
  resynchronise closes the socket instead; the UI reconnects and gets a fresh snapshot anyway.

The bus also keeps a bounded ring of the last ``history_size`` events with increasing ids for the SSE endpoint
``GET /api/events`` (spec §2.1: replay of history, then live), and formats SSE messages with the event names
of that section.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from anyon.services.logs.jsonpatch import Op, dumps, patch_frame

# SSE event names of spec §2.1 (the LogMsg kinds).
SSE_JSON_PATCH: Final = "json_patch"
SSE_STDOUT: Final = "stdout"
SSE_STDERR: Final = "stderr"
SSE_SESSION_ID: Final = "session_id"
SSE_FINISHED: Final = "finished"
SSE_EVENT_NAMES: Final = (SSE_JSON_PATCH, SSE_STDOUT, SSE_STDERR, SSE_SESSION_ID, SSE_FINISHED)

# Topic kinds; a topic is "<kind>:<key>".
TASKS: Final = "tasks"  # keyed by project id
EXECUTION_PROCESSES: Final = "execution_processes"  # keyed by attempt id
DRAFTS: Final = "drafts"  # keyed by project id
ATTEMPTS: Final = "task_attempts"  # keyed by task id (removals only)


def tasks_topic(project_id: str) -> str:
    return f"{TASKS}:{project_id}"


def processes_topic(attempt_id: str) -> str:
    return f"{EXECUTION_PROCESSES}:{attempt_id}"


def drafts_topic(project_id: str) -> str:
    return f"{DRAFTS}:{project_id}"


def attempts_topic(task_id: str) -> str:
    return f"{ATTEMPTS}:{task_id}"


class Resync(Exception):
    """Raised by a lagged subscription: events were dropped; send a fresh snapshot (or disconnect)."""

    def __init__(self, dropped: int) -> None:
        super().__init__(f"subscriber fell behind; {dropped} event(s) dropped, resynchronise")
        self.dropped = dropped


@dataclass(frozen=True)
class BusEvent:
    """One published change. ``id`` increases by one per event, in delivery order, per bus."""

    id: int
    topic: str
    event: str
    ops: Sequence[Op]
    data: str = field(repr=False)  # the compact JSON of the payload, computed once for every subscriber

    def ws_frame(self) -> str:
        """The ``{"JsonPatch":[...]}`` WebSocket text frame of this event's ops."""
        return patch_frame(self.ops)

    def sse(self) -> str:
        """This event as an SSE message (``id``, ``event``, ``data`` lines, blank line)."""
        return format_sse(self.event, self.data, event_id=self.id)


def format_sse(event: str, data: str, *, event_id: int | None = None) -> str:
    """An SSE message; multi-line data becomes several ``data:`` lines as the format requires."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in (data.split("\n") if data else [""]))
    return "\n".join(lines) + "\n\n"


SSE_KEEPALIVE: Final = ":\n\n"
"""An SSE comment line: keeps proxies from closing an idle stream."""

EventFilter = Callable[[BusEvent], bool] | str | Iterable[str] | None


def _compile_filter(spec: EventFilter) -> Callable[[BusEvent], bool]:
    """``None`` = everything; a str = one topic, or every topic of a kind when it has no ``:``; an iterable of
    such strings = any of them; a callable = used as is."""
    if spec is None:
        return lambda _e: True
    if callable(spec):
        return spec
    names = [spec] if isinstance(spec, str) else list(spec)
    exact = frozenset(n for n in names if ":" in n)
    kinds = tuple(n + ":" for n in names if ":" not in n)
    return lambda e: e.topic in exact or (bool(kinds) and e.topic.startswith(kinds))


class Subscription:
    """A bounded, async-iterable view of the bus. Use ``async with`` or call :meth:`close` when done."""

    def __init__(self, bus: EventBus, accept: Callable[[BusEvent], bool], queue_size: int) -> None:
        self._bus = bus
        self._accept = accept
        self._queue: collections.deque[BusEvent] = collections.deque()
        self._queue_size = queue_size
        self._waiter: asyncio.Future[None] | None = None
        self._lagged = False
        self._dropped = 0
        self.closed = False

    @property
    def lagged(self) -> bool:
        return self._lagged

    @property
    def pending(self) -> int:
        return len(self._queue)

    # called on the loop thread by the bus
    def _offer(self, event: BusEvent) -> None:
        if self.closed or not self._accept(event):
            return
        if self._lagged:
            self._dropped += 1
            return
        if len(self._queue) >= self._queue_size:
            self._dropped = len(self._queue) + 1
            self._queue.clear()
            self._lagged = True
        else:
            self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[BusEvent]:
        return self

    async def __anext__(self) -> BusEvent:
        while True:
            if self._lagged:
                dropped, self._dropped, self._lagged = self._dropped, 0, False
                raise Resync(dropped)
            if self._queue:
                return self._queue.popleft()
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def drain(self) -> list[BusEvent]:
        """Everything queued right now, without waiting (raises :class:`Resync` when lagged)."""
        if self._lagged:
            dropped, self._dropped, self._lagged = self._dropped, 0, False
            raise Resync(dropped)
        items = list(self._queue)
        self._queue.clear()
        return items

    def close(self) -> None:
        """Detach from the bus and free the queue; a waiting iterator ends."""
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._bus._detach(self)
        self._wake()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Publish/subscribe of JSON Patch events: one per deployment, injected into services and the API."""

    def __init__(
        self,
        *,
        queue_size: int = 1000,
        history_size: int = 1000,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if queue_size < 1 or history_size < 0:
            raise ValueError("queue_size must be >= 1 and history_size >= 0")
        self._queue_size = queue_size
        self._history: collections.deque[BusEvent] = collections.deque(maxlen=history_size)
        self._subscribers: list[Subscription] = []
        self._loop = loop
        self._lock = threading.Lock()  # guards ids/history when no loop is bound yet
        self._next_id = 1

    # --- binding ---------------------------------------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Deliver on ``loop`` (default: the running loop). Subscribing binds automatically."""
        self._loop = loop or asyncio.get_running_loop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    # --- publishing ------------------------------------------------------------------------------

    def publish(self, topic: str, ops: Sequence[Op], *, event: str = SSE_JSON_PATCH, text: str = "") -> None:
        """Publish ``ops`` under ``topic``; safe from any thread, never blocks on subscribers.

        Call it only after the change is committed, so a subscriber that re-reads the DB sees it.
        ``event`` is the SSE name of spec §2.1: ``json_patch`` for state changes (data = the ops); for
        ``stdout``/``stderr``/``session_id`` the SSE data is ``text``; ``finished`` has empty data.
        """
        if event not in SSE_EVENT_NAMES:
            raise ValueError(f"unknown event name {event!r}; expected one of {', '.join(SSE_EVENT_NAMES)}")
        if ":" not in topic:
            raise ValueError(f"topic must be '<kind>:<key>', got {topic!r}")
        ops = list(ops)
        loop = self._loop
        if loop is None or loop.is_closed():
            # no loop yet (start-up) or after shutdown: nobody can be subscribed; keep the history right
            with self._lock:
                self._deliver(topic, ops, event, text)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(topic, ops, event, text)
        else:
            try:
                loop.call_soon_threadsafe(self._deliver, topic, ops, event, text)
            except RuntimeError:  # loop closed between the check and the call
                with self._lock:
                    self._deliver(topic, ops, event, text)

    def _deliver(self, topic: str, ops: list[Op], event: str, text: str) -> None:
        data = dumps(ops) if event == SSE_JSON_PATCH else ("" if event == SSE_FINISHED else text)
        ev = BusEvent(id=self._next_id, topic=topic, event=event, ops=ops, data=data)
        self._next_id += 1
        self._history.append(ev)
        for sub in list(self._subscribers):
            sub._offer(ev)

    # --- subscribing -----------------------------------------------------------------------------

    def subscribe(self, filter: EventFilter = None, *, queue_size: int | None = None) -> Subscription:
        """A new subscription receiving events published from now on that pass ``filter``.

        Must be called on the bus's event loop (it binds the bus to the running loop if unbound).
        """
        self._ensure_loop()
        sub = Subscription(self, _compile_filter(filter), queue_size or self._queue_size)
        self._subscribers.append(sub)
        return sub

    def subscribe_with_history(
        self, filter: EventFilter = None, *, after_id: int | None = None, queue_size: int | None = None
    ) -> tuple[list[BusEvent], Subscription]:
        """The history (optionally after ``after_id``, e.g. an SSE ``Last-Event-ID``) and a live subscription,
        taken atomically: no event is missed or seen twice between the two."""
        self._ensure_loop()
        history = self.history(after_id=after_id, filter=filter)
        return history, self.subscribe(filter, queue_size=queue_size)

    def history(self, *, after_id: int | None = None, filter: EventFilter = None) -> list[BusEvent]:
        """The retained events (at most ``history_size``), oldest first."""
        accept = _compile_filter(filter)
        return [e for e in list(self._history) if (after_id is None or e.id > after_id) and accept(e)]

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _ensure_loop(self) -> None:
        running = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = running
        elif self._loop is not running:
            raise RuntimeError("subscribe() must be called on the event loop the bus is bound to")

    def _detach(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def close(self) -> None:
        """End every subscription (server shutdown)."""
        for sub in list(self._subscribers):
            sub.close()


__all__ = [
    "ATTEMPTS",
    "DRAFTS",
    "EXECUTION_PROCESSES",
    "SSE_EVENT_NAMES",
    "SSE_FINISHED",
    "SSE_JSON_PATCH",
    "SSE_KEEPALIVE",
    "SSE_SESSION_ID",
    "SSE_STDERR",
    "SSE_STDOUT",
    "TASKS",
    "BusEvent",
    "EventBus",
    "EventFilter",
    "Resync",
    "Subscription",
    "attempts_topic",
    "drafts_topic",
    "format_sse",
    "processes_topic",
    "tasks_topic",
]
