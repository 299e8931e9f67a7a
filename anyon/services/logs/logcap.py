"""Per-process cap on stored output: keep the head and the tail, omit the middle (``log_cap_bytes``).

An agent that prints 100 MB must not cost 100 MB of database (and the memory to replay it). The log store is
append-only (spec §8) and live readers must see exactly what is stored, so the cap sits where output is
captured, before anything is emitted:

* the first half of the cap (the **head**) passes through as it arrives;
* when the head is full, a notice line is emitted, and from then on output goes into a bounded ring that
  keeps only the last half of the cap (the **tail**), in memory, while the process runs;
* when the process ends, ``[anyon] N bytes omitted`` and then the tail are emitted.

So the stored log, the raw-logs stream and the normalized-logs stream all read head, notice, marker, tail,
with no gap or rewrite for a follower to reconcile; the price is that a live follower sees nothing of a
flooding process between the notice and its end. Cuts are made on line boundaries where the chunk has one
(a stream-json line cut in two would be garbage to the normaliser), and the normaliser treats the marker
lines as a discontinuity (see :func:`is_marker`).

Sizes are UTF-8 bytes, as the log store counts them; the markers themselves are not counted.
"""

from __future__ import annotations

import collections
import re
from typing import Any, Final

MARKER_PREFIX: Final = "[anyon] "
_MARKER = re.compile(r"\[anyon\] (?:\d+ bytes omitted|output reached the log cap [^\n]*)\n?\Z")

Chunk = tuple[str, str]  # (stream, text)
_COALESCE_BELOW: Final = 4096


def omitted_marker(count: int) -> str:
    """The line that stands for the omitted middle of a capped log."""
    return f"{MARKER_PREFIX}{count} bytes omitted\n"


def cap_notice(head: int, tail: int) -> str:
    """The line emitted when the head is full (the tail follows at the end)."""
    return (
        f"{MARKER_PREFIX}output reached the log cap after {head} bytes: further output is held back and "
        f"only its last {tail} bytes are kept, shown when the process ends\n"
    )


def is_marker(text: str) -> bool:
    """Whether a stderr chunk is one of the cap's own lines (a discontinuity in the agent's output)."""
    return text.startswith(MARKER_PREFIX) and _MARKER.match(text) is not None


def _utf8_prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits in ``limit`` bytes."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _utf8_suffix(text: str, limit: int) -> str:
    """The longest suffix of ``text`` whose UTF-8 form fits in ``limit`` bytes."""
    data = text.encode("utf-8")
    return data[len(data) - limit :].decode("utf-8", "ignore") if limit > 0 else ""


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class LogCap:
    """The head/tail filter of one process's output; not thread-safe (the event loop owns it)."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap = max(0, cap_bytes)
        self.head_budget = self.cap // 2
        self.tail_budget = self.cap - self.head_budget
        self._head_used = 0
        self._tailing = False
        self._closed = self.cap == 0
        # [stream, text, size]: the oldest entry is trimmed in place; small writes are coalesced
        self._ring: collections.deque[list[Any]] = collections.deque()
        self._max_entries = max(16, self.tail_budget // 512)
        self._ring_bytes = 0
        self._omitted = 0
        self._cut_mid_line = False  # the omitted part ended inside a line: the tail starts with its rest

    @property
    def tailing(self) -> bool:
        """Whether output is being held back in the tail ring."""
        return self._tailing

    @property
    def held_bytes(self) -> int:
        return self._ring_bytes

    def accept(self, stream: str, text: str) -> list[Chunk]:
        """What of this chunk to emit now (possibly nothing: it went into the tail)."""
        if self._closed:
            return [(stream, text)]
        if self._tailing:
            self._hold(stream, text)
            return []
        size = _size(text)
        if self._head_used + size <= self.head_budget:
            self._head_used += size
            return [(stream, text)]
        head = _utf8_prefix(text, self.head_budget - self._head_used)
        newline = head.rfind("\n")
        if newline >= 0:
            head = head[: newline + 1]
        elif self._head_used:
            head = ""  # the head ends with the previous chunk rather than inside this chunk's first line
        self._head_used = self.head_budget
        self._tailing = True
        out: list[Chunk] = [(stream, head)] if head else []
        out.append(("stderr", cap_notice(self.head_budget, self.tail_budget)))
        rest = text[len(head) :]
        if rest:
            self._hold(stream, rest)
        return out

    def _hold(self, stream: str, text: str) -> None:
        ring = self._ring
        size = _size(text)
        last = ring[-1] if ring else None
        if last is not None and last[0] == stream and last[2] < _COALESCE_BELOW:
            last[1] += text  # small writes share an entry: the ring's overhead stays per kilobyte
            last[2] += size
        else:
            ring.append([stream, text, size])
        self._ring_bytes += size
        while self._ring_bytes > self.tail_budget or len(ring) > self._max_entries:
            first = ring[0]
            excess = self._ring_bytes - self.tail_budget
            if first[2] <= excess or len(ring) > self._max_entries:
                ring.popleft()
                self._drop(first[1], first[2])
            else:
                kept = _utf8_suffix(first[1], first[2] - excess)
                cut = first[1][: len(first[1]) - len(kept)]
                first[1], first[2] = kept, _size(kept)
                self._drop(cut, _size(cut))

    def _drop(self, text: str, size: int) -> None:
        self._ring_bytes -= size
        self._omitted += size
        if text:
            self._cut_mid_line = not text.endswith("\n")

    def close(self) -> list[Chunk]:
        """The process ended: the marker and the tail (nothing when the cap was never reached).

        Afterwards every chunk passes through (messages the engine adds after the end).
        """
        if self._closed:
            return []
        self._closed = True
        if not self._tailing:
            return []
        ring, self._ring = self._ring, collections.deque()
        if self._cut_mid_line and ring:
            first = ring[0]
            newline = first[1].find("\n")
            if newline >= 0:  # drop the rest of the line whose start was omitted
                self._omitted += _size(first[1][: newline + 1])
                first[1] = first[1][newline + 1 :]
        self._ring_bytes = 0
        out: list[Chunk] = [("stderr", omitted_marker(self._omitted))]
        out += [(stream, text) for stream, text, _size_ in ring if text]
        return out


__all__ = ["MARKER_PREFIX", "LogCap", "cap_notice", "is_marker", "omitted_marker"]
