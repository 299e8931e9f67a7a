"""Small helpers every resource uses: reading bounded JSON bodies and running blocking service calls.

Services are synchronous (peewee, pygit2); resources run them in worker threads so the event loop
keeps serving streams while a query or a git operation runs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import falcon
import falcon.asgi

from anyon.api.envelope import ApiError, ok
from anyon.api.validation import F, check_body, decode_json

T = TypeVar("T")


async def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking service call in a worker thread."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """Read the request body, refusing anything larger than ``limit`` bytes (413) without buffering it."""
    declared = req.content_length
    if declared is not None and declared > limit:
        raise ApiError(
            413, f"PayloadTooLarge: request body of {declared} bytes exceeds the {limit}-byte limit"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"PayloadTooLarge: request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(
    req: falcon.asgi.Request, fields: Mapping[str, F], *, what: str = "body", partial: bool = False
) -> dict[str, Any]:
    limit: int = req.context.max_body_bytes
    return check_body(decode_json(await read_body(req, limit)), fields, what=what, partial=partial)


async def optional_json_body(req: falcon.asgi.Request, fields: Mapping[str, F]) -> dict[str, Any]:
    """A body that may be absent: read however it is framed (length, chunked or none); empty → all None."""
    raw = await read_body(req, req.context.max_body_bytes)
    return check_body(decode_json(raw) if raw.strip() else {}, fields)


async def raw_json(req: falcon.asgi.Request) -> Any:
    limit: int = req.context.max_body_bytes
    return decode_json(await read_body(req, limit))


def respond(resp: falcon.asgi.Response, data: Any = None, status: int = 200) -> None:
    resp.status = status
    resp.media = ok(data)
