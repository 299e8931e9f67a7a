"""Giving freed heap memory back to the operating system after a burst of work.

A flooding process leaves the server with megabytes of freed but still mapped heap: CPython hands large
strings (log chunks, WebSocket frames, database rows) to the C allocator, and glibc keeps what it freed in
its arenas (one per thread that ever allocated: the event loop and every worker thread of
``asyncio.to_thread``) instead of returning it, so the RSS measured after an agent printed 100 MB stayed
~100 MB above where it started. ``malloc_trim(0)`` releases the free pages of every arena. It is cheap
(milliseconds) and safe at any time; on a C library without it (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache
from typing import Any

log = logging.getLogger(__name__)


@cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_memory() -> bool:
    """Return free heap pages to the OS; True when the C library released something."""
    trim = _malloc_trim()
    if trim is None:
        return False
    try:
        return bool(trim(0))
    except OSError:  # pragma: no cover - a foreign libc that exports the name with another meaning
        log.debug("malloc_trim failed", exc_info=True)
        return False


__all__ = ["release_memory"]
