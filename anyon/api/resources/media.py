"""Images and notification sounds (spec §1.1 ``/api/sounds``, §1.7 ``/api/images``).

The two routes that answer raw bytes instead of the envelope live here. Both send
``X-Content-Type-Options: nosniff`` and a Content-Security-Policy that forbids everything, with a
sandbox: even if a browser were talked into rendering a stored file as a document, it could run no
script in this server's origin (THREAT-MODEL: "a web page in the user's browser"). Uploads are only
kept when their bytes are a raster image (:mod:`anyon.services.board.images`).
"""

from __future__ import annotations

import falcon.asgi
from falcon.media.multipart import MultipartFormHandler

from anyon.api.http import respond, run_sync
from anyon.api.validation import api_operation, parse_uuid
from anyon.services.board.images import ImageFormatError, ImageTooLarge
from anyon.services.container import Services
from anyon.services.errors import NotFound
from anyon.services.notifications.sounds import CONTENT_TYPE as WAV
from anyon.services.notifications.sounds import SOUND_FILES

#: What a multipart form may add around the image itself (boundaries, part headers, small fields).
FORM_OVERHEAD_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_RAW_FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    # pages of other sites may not even embed them (an <img> request carries no Origin to check)
    "Cross-Origin-Resource-Policy": "same-site",
}


def _form_handler(max_parts: int) -> MultipartFormHandler:
    handler = MultipartFormHandler()
    handler.parse_options.max_body_part_count = max_parts
    handler.parse_options.max_body_part_headers_size = 8 * 1024
    return handler


def _too_large(limit: int) -> ImageTooLarge:
    return ImageTooLarge(f"ImageError: Image too large (max: {limit} bytes)")


async def read_image_field(
    req: falcon.asgi.Request, handler: MultipartFormHandler, limit: int
) -> tuple[bytes, str | None]:
    """The bytes and client file name of the form's ``image`` field, never buffering more than the limit.

    A declared length over the limit is refused before a byte is read; a chunked body is counted as
    it arrives. Malformed forms raise falcon's MultipartParseError (400).
    """
    budget = limit + FORM_OVERHEAD_BYTES
    if req.content_length is not None and req.content_length > budget:
        raise _too_large(limit)
    form = await handler.deserialize_async(req.stream, req.content_type, req.content_length)
    image: tuple[bytes, str | None] | None = None
    total = 0
    async for part in form:
        keep = part.name == "image" and image is None
        chunks: list[bytes] = []
        size = 0
        while chunk := await part.stream.read(_CHUNK):
            total += len(chunk)
            size += len(chunk)
            if total > budget or (keep and size > limit):
                raise _too_large(limit)
            if keep:
                chunks.append(chunk)
        if keep:
            image = (b"".join(chunks), part.filename)
    if image is None:
        raise ImageFormatError("ImageError: the form has no file field named 'image'")
    return image


class ImageUpload:
    """``POST /api/images/upload`` and ``POST /api/images/task/{task_id}/upload`` (multipart, ``image``)."""

    def __init__(self, services: Services) -> None:
        self._images = services.images
        self._handler = _form_handler(services.config.images.max_form_parts)

    async def _upload(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, task_id: str | None
    ) -> None:
        task = parse_uuid(task_id, "task id") if task_id is not None else None
        data, name = await read_image_field(req, self._handler, self._images.max_bytes)
        respond(resp, await run_sync(self._images.store, data, name, task))

    @api_operation(body="multipart:image", data="ImageResponse")
    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, task_id: str | None = None
    ) -> None:
        await self._upload(req, resp, task_id)


class ImageItem:
    def __init__(self, services: Services) -> None:
        self._images = services.images

    @api_operation(data="null")
    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str) -> None:
        await run_sync(self._images.delete, parse_uuid(image_id, "image id"))
        respond(resp, None)


class ImageFile:
    """``GET /api/images/{id}/file``: the stored bytes, with the type sniffed at upload."""

    def __init__(self, services: Services) -> None:
        self._images = services.images

    @api_operation(data="raw-image")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str) -> None:
        path, mime, stored = await run_sync(self._images.file, parse_uuid(image_id, "image id"))
        data = await run_sync(_read, path)
        resp.content_type = mime
        resp.data = data
        for name, value in _RAW_FILE_HEADERS.items():
            resp.set_header(name, value)
        resp.set_header("Content-Disposition", f'inline; filename="{stored}"')
        resp.set_header("Cache-Control", "public, max-age=31536000")


class Sound:
    """``GET /api/sounds/{sound}``: one of the SoundFile values as ``audio/wav``."""

    def __init__(self, services: Services) -> None:
        self._sounds = services.sounds

    @api_operation(data="raw-wav")
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, sound: str) -> None:
        data = await run_sync(self._sounds.wav, sound)
        if data is None:
            raise NotFound(
                f"SoundNotFound: no sound {sound[:64]!r}; expected one of {', '.join(SOUND_FILES)}"
            )
        resp.content_type = WAV
        resp.data = data
        for name, value in _RAW_FILE_HEADERS.items():
            resp.set_header(name, value)
        resp.set_header("Cache-Control", "public, max-age=86400")


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()
