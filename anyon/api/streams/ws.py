"""What every WebSocket stream shares: refusing before the handshake, ignoring client frames, batching.

Why a small runner instead of a bare send loop: a stream that is waiting for the next bus event or log
line never touches the socket, so it would not notice that the client left and would keep its
subscription, log reader or file watcher forever. :func:`serve` runs the producer next to a task that
reads (and ignores, spec §2.0) client frames; whichever ends first cancels the other, and the producer's
``finally`` releases what it held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import falcon
import falcon.asgi
from falcon.asgi.ws import _WebSocketState

from anyon.api.envelope import soft_error
from anyon.services.logs.jsonpatch import FINISHED_FRAME, Op, patch_frame

log = logging.getLogger(__name__)

_PATCH_PREFIX = '{"JsonPatch":['
_PATCH_SUFFIX = "]}"

CLOSE_NORMAL = 1000
CLOSE_INTERNAL = 1011


class StreamSender:
    """Sends frames on an accepted socket; knows how to join many one-op frames into one."""

    def __init__(self, ws: falcon.asgi.WebSocket) -> None:
        self.ws = ws
        self.frames_sent = 0

    async def ops(self, ops: Sequence[Op]) -> None:
        if ops:
            await self.text(patch_frame(ops))

    async def text(self, frame: str) -> None:
        await self.ws.send_text(frame)
        self.frames_sent += 1

    async def patch_frames(self, frames: Sequence[str]) -> None:
        """Send several ``{"JsonPatch":[…]}`` frames as one: ops are applied in the same order either way,
        and fifty followers of a chatty process cost a send per batch instead of a send per line."""
        if not frames:
            return
        if len(frames) == 1:
            await self.text(frames[0])
            return
        await self.text(join_patch_frames(frames))

    async def finished(self) -> None:
        await self.text(FINISHED_FRAME)


def join_patch_frames(frames: Sequence[str]) -> str:
    """``{"JsonPatch":[a]}`` + ``{"JsonPatch":[b,c]}`` → ``{"JsonPatch":[a,b,c]}`` by string splicing."""
    bodies = []
    for frame in frames:
        if not (frame.startswith(_PATCH_PREFIX) and frame.endswith(_PATCH_SUFFIX)):
            raise ValueError(f"not a JsonPatch frame: {frame[:40]!r}")
        body = frame[len(_PATCH_PREFIX) : -len(_PATCH_SUFFIX)]
        if body:
            bodies.append(body)
    return _PATCH_PREFIX + ",".join(bodies) + _PATCH_SUFFIX


async def deny(req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, status: int, message: str) -> None:
    """Refuse the upgrade with an enveloped HTTP error (spec §1.6: "enveloped 404").

    Uses the ASGI "websocket.http.response" extension when the server offers it (uvicorn does); otherwise
    the handshake is refused with a close code of 4000 + status, which clients see as a failed upgrade.
    """
    extensions = req.scope.get("extensions") or {}
    if ws.unaccepted and "websocket.http.response" in extensions:
        body = json.dumps(soft_error(message)).encode()
        send = ws._asgi_send
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        ws._state = _WebSocketState.CLOSED  # the handshake is answered; nothing more may be sent
        return
    await ws.close(4000 + status if status < 1000 else CLOSE_INTERNAL)


async def _ignore_client(ws: falcon.asgi.WebSocket) -> None:
    """Read and drop client frames until the client goes away (this is also what keeps ping/pong flowing)."""
    while True:
        try:
            await ws.receive_text()
        except falcon.errors.PayloadTypeError:
            continue  # a binary frame: ignored like any other
        except falcon.WebSocketDisconnected:
            return


async def serve(ws: falcon.asgi.WebSocket, producer: Callable[[StreamSender], Awaitable[Any]]) -> None:
    """Accept, run ``producer`` until it returns or the client leaves, then close cleanly.

    A producer that returns has sent everything (``finished`` included); the socket is closed with 1000 so
    that the UI does not reconnect. An unexpected producer error closes with 1011 (the UI reconnects).
    """
    await ws.accept()
    sender = StreamSender(ws)
    reader = asyncio.create_task(_ignore_client(ws), name="ws-client-reader")
    work: asyncio.Task[Any] = asyncio.ensure_future(producer(sender))
    try:
        await asyncio.wait({reader, work}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, reader):
            if not task.done():
                task.cancel()
        await asyncio.gather(work, reader, return_exceptions=True)
    if work.cancelled() or ws.closed:
        return
    exc = work.exception()
    if exc is None:
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_NORMAL)
    elif isinstance(exc, falcon.WebSocketDisconnected):
        return
    else:
        log.error("stream %s failed", ws, exc_info=exc)
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_INTERNAL)
