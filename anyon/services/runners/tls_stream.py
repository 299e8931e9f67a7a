"""A TLS connection whose write side can end alone (``close_notify``) while its read side keeps reading.

An exec's stdin ends with a half-close: the Engine reads EOF on stdin while the command's output keeps
flowing back. Over a unix socket or plain TCP that is ``write_eof()``; over TLS it is a ``close_notify``
alert sent on a connection that stays open (what the Docker CLI's ``CloseWrite`` does, and what the
Engine expects). asyncio's TLS transport cannot do that (``write_eof`` is unsupported), so this module
runs TLS itself over a plain socket with :class:`ssl.MemoryBIO`, and hands out an ordinary
``StreamReader``/``StreamWriter`` pair: the exec code above does not know the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

_READ = 64 * 1024


class _TLSTransport(asyncio.Transport):
    """Encrypts writes onto the raw connection; ``write_eof`` sends ``close_notify`` and nothing else."""

    def __init__(self, raw: asyncio.StreamWriter, tls: ssl.SSLObject, outgoing: ssl.MemoryBIO) -> None:
        super().__init__()
        self._raw = raw
        self._tls = tls
        self._outgoing = outgoing
        self._eof_sent = False

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data and not self._raw.is_closing():
            self._raw.write(data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_sent:
            raise RuntimeError("the write side of this TLS stream was closed")
        self._tls.write(bytes(data))
        self._flush()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._eof_sent:
            return
        self._eof_sent = True
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLError):
            self._tls.unwrap()  # sends close_notify; the peer's answer is not waited for
        self._flush()

    def close(self) -> None:
        self._raw.close()

    def is_closing(self) -> bool:
        return self._raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._raw.get_extra_info(name, default)


async def open_tls_connection(
    host: str, port: int, context: ssl.SSLContext, limit: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, handshake (the server's certificate checked by ``context``), and return the streams."""
    raw_reader, raw_writer = await asyncio.open_connection(host, port, limit=limit)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=host)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw_writer.write(outgoing.read())
                await raw_writer.drain()
                data = await raw_reader.read(_READ)
                if not data:
                    raise ConnectionResetError("the TLS handshake ended early") from None
                incoming.write(data)
        raw_writer.write(outgoing.read())
        await raw_writer.drain()
    except BaseException:
        raw_writer.close()
        raise
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    transport = _TLSTransport(raw_writer, tls, outgoing)
    protocol = raw_writer._protocol  # type: ignore[attr-defined]  # the raw socket's flow control
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    pump = loop.create_task(_decrypt(raw_reader, reader, tls, incoming, transport))
    reader._anyon_pump = pump  # type: ignore[attr-defined]  # held by the reader, ends with the stream
    return reader, writer


async def _decrypt(
    raw: asyncio.StreamReader,
    reader: asyncio.StreamReader,
    tls: ssl.SSLObject,
    incoming: ssl.MemoryBIO,
    transport: _TLSTransport,
) -> None:
    """Feed the decrypted bytes to ``reader`` until the peer's close_notify or the connection's end."""
    try:
        while True:
            data = await raw.read(_READ)
            if not data:
                break
            incoming.write(data)
            while True:
                try:
                    chunk = tls.read(_READ)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:  # the peer's close_notify: its side is done
                    return
                if not chunk:
                    return
                reader.feed_data(chunk)
            transport._flush()  # a key update or an alert the read produced
    except (OSError, ssl.SSLError) as exc:
        reader.set_exception(ConnectionResetError(str(exc)))
        return
    finally:
        if reader.exception() is None:
            reader.feed_eof()
