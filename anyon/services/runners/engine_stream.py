"""Starting an Engine API exec on an asyncio connection and demultiplexing its output frames.

docker-py's ``exec_start(socket=True)`` hands over the raw socket *under* its buffered HTTP reader, so
output the daemon sent together with the response headers can be lost, and reading it needs a thread
per process. Doing the tiny HTTP upgrade here keeps every byte, streams frames as they arrive, and
never blocks the event loop. The exec itself is still created and inspected through docker-py.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from urllib.parse import urlparse

from anyon.services.runners.base import RunnerError, RunnerUnavailable
from anyon.services.runners.tls_stream import open_tls_connection

STDOUT = 1
STDERR = 2
_HEADER_LIMIT = 64 * 1024


async def open_engine_connection(
    host: str, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the daemon at ``host``: ``unix://``, or ``tcp://`` (over TLS when ``tls`` is given)."""
    url = urlparse(host)
    try:
        if url.scheme in ("unix", ""):
            return await asyncio.open_unix_connection(url.path or host, limit=_HEADER_LIMIT)
        if url.scheme in ("tcp", "http", "https") and tls is not None:
            # a TLS layer of our own: stdin's half-close is a close_notify on an open connection
            return await open_tls_connection(url.hostname or "", url.port or 2376, tls, _HEADER_LIMIT)
        if url.scheme in ("tcp", "http"):
            return await asyncio.open_connection(url.hostname, url.port or 2375, limit=_HEADER_LIMIT)
    except (OSError, ssl.SSLError) as exc:
        raise RunnerUnavailable(f"the Docker Engine at {host} does not answer: {exc}") from exc
    raise RunnerError(f"docker.host {host!r}: only unix:// and tcp:// Engine addresses are supported")


async def start_exec(
    host: str, api_version: str, exec_id: str, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """POST /exec/{id}/start with a connection upgrade; returns the hijacked stream."""
    reader, writer = await open_engine_connection(host, tls)
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    request = (
        f"POST /v{api_version}/exec/{exec_id}/start HTTP/1.1\r\n"
        "Host: docker\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: Upgrade\r\n"
        "Upgrade: tcp\r\n\r\n"
    ).encode() + body
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        writer.close()
        raise RunnerUnavailable(f"the Docker Engine closed the exec stream: {exc}") from exc
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if status in (101, 200):
        return reader, writer
    detail = await _error_body(reader, head)
    writer.close()
    raise RunnerError(f"the Docker Engine refused to start the exec ({status_line}): {detail}")


async def _error_body(reader: asyncio.StreamReader, head: bytes) -> str:
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1].strip() or 0)
    try:
        raw = await asyncio.wait_for(reader.read(min(length, 8192)) if length else reader.read(8192), 2)
    except (TimeoutError, OSError):
        return ""
    try:
        return str(json.loads(raw).get("message", raw.decode(errors="replace")))
    except (ValueError, AttributeError):
        return raw.decode(errors="replace").strip()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """One multiplexed frame: 8-byte header (stream, 0, 0, 0, big-endian size), then the payload.

    Returns ``None`` at the end of the stream. Payloads are at most the daemon's copy buffer (32 KiB),
    so a frame never needs more memory than that.
    """
    try:
        header = await reader.readexactly(8)
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None
    size = int.from_bytes(header[4:8], "big")
    try:
        payload = await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        payload = exc.partial
    except ConnectionResetError:
        return None
    return header[0], payload
