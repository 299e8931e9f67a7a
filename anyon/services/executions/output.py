"""A process's output: live readers, the normaliser, the log cap and batched writes to the DB log.

Every chunk a process prints (and every line the server writes into its log) goes through
:meth:`ProcessOutput.emit`: the log cap may hold it back as part of the tail, the in-memory store feeds
live readers, the agent's normaliser turns it into entries (and may spot a failure or a session id),
and the chunk joins the batch the log store receives at most every 0.1 s or 256 KiB.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from typing import Any

from anyon.services.executions import supervision
from anyon.services.executions.core import EngineCore, LiveProcess
from anyon.services.executions.records import ProcessRecords
from anyon.services.protocols import ProtocolSink
from anyon.services.runners.base import RunnerError

log = logging.getLogger(__name__)

_LOG_FLUSH_SECONDS = 0.1
_LOG_FLUSH_BYTES = 256 * 1024


class ProcessOutput:
    def __init__(self, core: EngineCore, records: ProcessRecords) -> None:
        self._core = core
        self._records = records

    def emit(self, live: LiveProcess, stream: str, text: str, *, from_server: bool = False) -> None:
        """One chunk of output, through the log cap (which may hold it back as part of the tail)."""
        for kept_stream, kept in live.cap.accept(stream, text):
            self.emit_now(live, kept_stream, kept, from_server=from_server)

    def emit_now(self, live: LiveProcess, stream: str, text: str, *, from_server: bool = False) -> None:
        """One chunk of output: live readers, the normaliser, and the batch for the DB log.

        ``from_server``: a line the server writes (queue notice, timeout, …), not the process's output:
        it is neither the start timings' first byte nor scanned for the process's errors.
        """
        core = self._core
        if live.normalizer is not None and not live.first_output_seen and not from_server:
            live.first_output_seen = True
            core.timings.mark(live.context.attempt_id, "first_byte")
        if core.first_output:
            waiting = core.first_output.pop(live.context.attempt_id, None)
            if waiting is not None:
                waiting.set()
        if stream == "stdout":
            live.store.push_stdout(text)
        else:
            live.store.push_stderr(text)
        if live.normalizer is not None:
            ops = (
                live.normalizer.feed_stdout(text) if stream == "stdout" else live.normalizer.feed_stderr(text)
            )
            if ops:
                live.store.push_patch(ops)
            failure = live.normalizer.failure
            if failure is not None and not live.failure_acted and not live.normalizer.answered:
                live.failure_acted = True
                core.spawn_background(self._fail_fast(live, failure.message), f"fail:{live.process_id}")
            if live.normalizer.session_id and not live.session_saved:
                live.session_saved = True
                live.store.push_session_id(live.normalizer.session_id)
                core.spawn_background(
                    core.db_call(
                        self._records.save_session, live.process_id, live.normalizer.session_id, None
                    ),
                    f"session:{live.process_id}",
                )
        live.pending_logs.append((stream, text))
        live.pending_bytes += len(text)
        if stream == "stderr":
            live.stderr_line_open = not text.endswith("\n")
            if not from_server and not live.pids_limit_noted:
                self._scan_for_pids_limit(live, text)

    def _scan_for_pids_limit(self, live: LiveProcess, text: str) -> None:
        window = live.stderr_tail + text
        live.stderr_tail = window[-supervision.TAIL_CHARS :]
        if supervision.names_pids_exhaustion(window):
            live.pids_limit_noted = True
            self.note(live, supervision.PIDS_LIMIT_MESSAGE)

    def note(self, live: LiveProcess, message: str) -> None:
        """A line from the server in the process's log: stderr, so the normalised log shows an error."""
        prefix = "\n" if live.stderr_line_open else ""
        self.emit(live, "stderr", f"{prefix}{message}\n", from_server=True)

    async def pump(self, live: LiveProcess, chunks: Any, stream: str) -> None:
        """Read one stream of the process to its end, decoding UTF-8 across chunk boundaries."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        loop = asyncio.get_running_loop()
        last_flush = loop.time()
        async for chunk in chunks:
            if chunk and not live.output.is_set():
                live.output.set()
            text = decoder.decode(chunk)
            if text:
                self.emit(live, stream, text)
                if live.protocol is not None and stream == "stdout":
                    live.protocol.on_stdout(text)
            if live.pending_bytes >= _LOG_FLUSH_BYTES or loop.time() - last_flush >= _LOG_FLUSH_SECONDS:
                await self.flush(live)
                last_flush = loop.time()
            elif live.pending_logs and live.flush_timer is None:
                # a process that falls quiet still has its last output stored within the flush interval
                live.flush_timer = loop.call_later(_LOG_FLUSH_SECONDS, self._flush_later, live)
        tail = decoder.decode(b"", final=True)
        if tail:
            self.emit(live, stream, tail)
        await self.flush(live)

    def _flush_later(self, live: LiveProcess) -> None:
        live.flush_timer = None
        self._core.spawn_background(self.flush(live), f"flush-logs:{live.process_id}")

    async def flush(self, live: LiveProcess) -> None:
        """The pending batch into the log store (one flush at a time, in emission order)."""
        async with live.flush_lock:
            if not live.pending_logs:
                return
            batch, live.pending_logs, live.pending_bytes = live.pending_logs, [], 0
            await self._core.db_call(self._core.logstore.append_many, live.process_id, batch)

    async def release_tail(self, live: LiveProcess) -> None:
        """A capped log: the omitted marker, then the held-back tail, paced like live output.

        The tail is up to half the cap at once; emitted in one go it would overrun the live window and
        every follower would rebuild its view from the store. Yielding after each chunk lets followers
        send as it goes; the store gets it in batches as from the pumps.
        """
        for i, (stream, text) in enumerate(live.cap.close()):
            self.emit_now(live, stream, text)
            if live.pending_bytes >= _LOG_FLUSH_BYTES:
                await self.flush(live)
            elif i % 4 == 3:
                await asyncio.sleep(0)

    async def _fail_fast(self, live: LiveProcess, message: str) -> None:
        """The agent said it cannot work (not signed in, no network): end it now, not at a timeout."""
        handle = live.handle
        if live.stop_requested or handle is None or handle.returncode is not None:
            return
        log.warning("process %s: %s", live.process_id, message)
        await self.flush(live)
        try:
            await handle.stop(self._core.settings.stop_escalation_seconds)
        except RunnerError as exc:
            log.warning("stopping process %s failed: %s", live.process_id, exc)

    def protocol_sink(self, live: LiveProcess) -> ProtocolSink:
        """Where the agent's protocol client writes: entries, log lines, and notes."""

        def log_line(text: str) -> None:
            self.emit(live, "stdout", text, from_server=True)
            self._core.spawn_background(self.flush(live), f"flush-logs:{live.process_id}")

        return ProtocolSink(live.store.push_patch, log_line, lambda message: self.note(live, message))
