"""``GET /api/events``: the event bus as Server-Sent Events (spec §2.1).

Replays the bus's bounded history (after ``Last-Event-ID`` when the client sends one), then live events,
with ``event:`` set to the LogMsg kind (``json_patch``, ``stdout``, ``stderr``, ``session_id``,
``finished``) and a keep-alive comment whenever the stream has been idle for ``keepalive_seconds``.

A subscriber that falls behind loses the events it missed (the bus drops its queue; SSE has no snapshot to
resynchronise with, which matches the reference's broadcast channel). Falcon notices a client that left at
the next write, so the subscription is released at most one keep-alive interval later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import falcon.asgi
from falcon.asgi import SSEvent

from anyon.services.board import events as ev
from anyon.services.container import Services

DEFAULT_KEEPALIVE_SECONDS = 15.0


def _sse_event(event: ev.BusEvent) -> SSEvent:
    # Falcon writes one ``data:`` line; text with newlines is continued on further data lines
    return SSEvent(event=event.event, text=event.data.replace("\n", "\ndata: "), event_id=str(event.id))


class EventsSse:
    def __init__(self, services: Services, *, keepalive_seconds: float | None = None) -> None:
        self._services = services
        self._keepalive = keepalive_seconds if keepalive_seconds is not None else DEFAULT_KEEPALIVE_SECONDS

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raw = req.get_header("Last-Event-ID")
        after = int(raw) if raw is not None and raw.strip().isdigit() else None
        history, sub = self._services.events.subscribe_with_history(after_id=after)
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.sse = self._events(history, sub)

    async def _events(self, history: list[ev.BusEvent], sub: ev.Subscription) -> AsyncIterator[SSEvent]:
        pending: asyncio.Future[ev.BusEvent] | None = None
        try:
            for event in history:
                yield _sse_event(event)
            stopping = self._services.stopping
            while not stopping.is_set():
                if pending is None:
                    pending = asyncio.ensure_future(sub.__anext__())
                stop_wait: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
                waiting: set[asyncio.Future[Any]] = {pending, stop_wait}
                done, _ = await asyncio.wait(
                    waiting, timeout=self._keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                stop_wait.cancel()
                if pending not in done:
                    if not stopping.is_set():
                        yield SSEvent(comment="keep-alive")
                    continue
                task, pending = pending, None
                try:
                    event = task.result()
                except ev.Resync:
                    continue  # events were dropped for this slow client; carry on with the live ones
                except StopAsyncIteration:
                    return
                yield _sse_event(event)
        finally:
            if pending is not None:
                pending.cancel()
            sub.close()
