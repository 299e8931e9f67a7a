"""Tell the user an attempt has finished, as the UI's notification settings ask (spec §5.3 finalise).

The engine calls :meth:`Notifier.attempt_finished` once an attempt has nothing left to run. What happens
then is decided here, off the engine's path: with ``notifications.desktop`` on (local mode), a desktop
notification (``push_enabled``) through ``notifications.push_command`` and the chosen sound
(``sound_enabled``) through ``notifications.sound_command``. A program that is not installed, fails or
hangs is skipped quietly (a debug line): a machine without a desktop simply gets no notice. Programs are
started without a shell, with the title and message as separate arguments, so a task title cannot
inject anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass

from anyon.services.board.user_config import UserConfigService
from anyon.services.db.database import Database
from anyon.services.db.models import ExecutionProcess, Task, TaskAttempt
from anyon.services.notifications.sounds import SOUND_FILES, SoundLibrary

log = logging.getLogger(__name__)

#: Players tried in order when ``notifications.sound_command`` is unset.
SOUND_PLAYERS = ("paplay", "aplay", "afplay")
#: Longest a notification program may run before it is killed.
PROGRAM_TIMEOUT_SECONDS = 10.0
_MAX_TITLE = 120


@dataclass(frozen=True)
class Notice:
    title: str
    message: str
    sound_file: str | None  # None: no sound wanted
    push: bool


class Notifier:
    """Builds the "attempt finished" notice and hands it to the desktop's programs."""

    def __init__(
        self,
        database: Database,
        user_config: UserConfigService,
        sounds: SoundLibrary,
        *,
        desktop: bool,
        push_command: str,
        sound_command: str | None,
        sound_dir: str,
    ) -> None:
        self._db = database
        self._user_config = user_config
        self._sounds = sounds
        self._desktop = desktop
        self._push_command = push_command
        self._sound_command = sound_command
        self._sound_dir = sound_dir
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._desktop

    def attempt_finished(self, attempt_id: uuid.UUID, process_id: uuid.UUID) -> None:
        """The engine's hook: the attempt's last process ended. Never raises, never blocks the caller."""
        if not self._desktop:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._notify(attempt_id, process_id))
        except RuntimeError:  # no loop (a synchronous caller): nothing to notify from
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _notify(self, attempt_id: uuid.UUID, process_id: uuid.UUID) -> None:
        try:
            notice = await asyncio.to_thread(self.notice_for, attempt_id, process_id)
            if notice is not None:
                await self.deliver(notice)
        except Exception:  # a notice is a courtesy: its failure must not surface anywhere else
            log.exception("the notification for attempt %s failed", attempt_id)

    def notice_for(self, attempt_id: uuid.UUID, process_id: uuid.UUID) -> Notice | None:
        """What to tell, from the rows and the UI's settings; None when the user wants nothing."""
        settings = self._user_config.get().get("notifications") or {}
        push = bool(settings.get("push_enabled"))
        sound = settings.get("sound_file") if settings.get("sound_enabled") else None
        if not push and sound is None:
            return None
        with self._db.connection():
            attempt = TaskAttempt.get_or_none(TaskAttempt.id == attempt_id)
            process = ExecutionProcess.get_or_none(ExecutionProcess.id == process_id)
            if attempt is None or process is None:
                return None
            task = Task.get_by_id(attempt.task_id)
        title = task.title if len(task.title) <= _MAX_TITLE else task.title[: _MAX_TITLE - 1] + "…"
        if process.status == "completed":
            message = f"✅ '{title}' completed successfully"
        elif process.status == "killed":
            message = f"⏹ '{title}' was stopped"
        else:
            message = f"❌ '{title}' failed"
        message += f"\nBranch: {attempt.branch}\nExecutor: {attempt.executor or 'unknown'}"
        return Notice(
            title=f"Task Complete: {title}",
            message=message,
            sound_file=sound if sound in SOUND_FILES else None,
            push=push,
        )

    async def deliver(self, notice: Notice) -> None:
        commands: list[tuple[str, list[str]]] = []
        if notice.push:
            commands.append((self._push_command, [notice.title, notice.message]))
        if notice.sound_file is not None:
            player = self._sound_command or next(filter(shutil.which, SOUND_PLAYERS), None)
            path = await asyncio.to_thread(self._sound_path, notice.sound_file)
            if player and path:
                commands.append((player, [path]))
        await asyncio.gather(*(self._run(program, args) for program, args in commands))

    def _sound_path(self, name: str) -> str | None:
        """The sound as a file a player can open (written once, atomically, under the temp dir)."""
        data = self._sounds.wav(name)
        if data is None:
            return None
        path = os.path.join(self._sound_dir, SOUND_FILES[name])
        if os.path.isfile(path) and os.path.getsize(path) == len(data):
            return path
        os.makedirs(self._sound_dir, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._sound_dir, prefix=".sound.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return path

    async def _run(self, program: str, args: list[str]) -> None:
        executable = shutil.which(program)
        if executable is None:
            log.debug("no %s on this machine: notification skipped", program)
            return
        try:
            process = await asyncio.create_subprocess_exec(
                executable,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            log.debug("could not start %s: %s", program, exc)
            return
        try:
            await asyncio.wait_for(process.wait(), PROGRAM_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.debug("%s did not finish in %.0f s; killed", program, PROGRAM_TIMEOUT_SECONDS)
