"""Images attached to tasks and follow-ups (spec §1.7, types.md §13).

Uploads are checked by their bytes, never by the name or the declared type the client sent: only the
raster formats the UI shows and agents read are kept (PNG, JPEG, GIF, WebP, BMP). SVG and anything
else that a browser could run as a document are refused outright. Files are stored once per content
(SHA-256) as ``<images dir>/<hash>.<ext>``: the name is ours, so no client-supplied text ever reaches
the file system. Before an agent runs, the task's images are copied into ``<worktree>/.vibe-images/``
(a ``.gitignore`` of ``*`` keeps them out of the agent's commits, as the reference does) and the
prompt's ``![alt](.vibe-images/<file>)`` links are rewritten to absolute paths. In cloud mode the
worktree is mounted at the same path in the container, so those paths are the agent's too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable
from typing import Any

import peewee as pw

from anyon.services.db.columns import utc_now
from anyon.services.db.database import Database
from anyon.services.db.models import Draft, Image, Task, TaskImage
from anyon.services.db.serialize import image_json
from anyon.services.errors import NotFound, ServiceError
from anyon.services.git.errors import InvalidPath
from anyon.services.git.worktree_files import write_into
from anyon.services.team.access import owner_id

log = logging.getLogger(__name__)

#: The folder, relative to the worktree, where an attempt's images are placed (the reference's name).
IMAGES_DIR = ".vibe-images"
#: An image unused by any task or draft this long after its upload is removed by the maintenance job.
ORPHAN_GRACE = dt.timedelta(hours=24)
_STORED_NAME = re.compile(r"^[0-9a-f]{64}\.(png|jpg|gif|webp|bmp)$")
_PROMPT_LINK = re.compile(r"!\[([^\]]*)\]\(" + re.escape(IMAGES_DIR) + r"/([^)\s/]+)\)")
_MAX_NAME = 255


def dedupe_key(digest: str, owner: str | None) -> str:
    """The ``images.hash`` of an upload: its SHA-256, per account when accounts exist.

    The file is stored once per content whoever uploads it; the row is per account, so that an image
    one account uploaded is never handed to another (it would be theirs to see only through a task).
    """
    return digest if owner is None else f"{digest}:{owner}"


class ImageFormatError(ServiceError):
    """400: the bytes are not an image this server accepts, or the form is not what the route takes."""

    status = 400


class ImageTooLarge(ServiceError):
    status = 413


def sniff(data: bytes) -> tuple[str, str] | None:
    """(extension, MIME type) from the content's magic numbers; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg", "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif", "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    if (
        len(data) >= 26
        and data[:2] == b"BM"
        and int.from_bytes(data[14:18], "little") in (12, 40, 52, 56, 108, 124)
    ):
        return "bmp", "image/bmp"
    return None


def display_name(name: str | None) -> str:
    """The client's file name, for display only: its last path part, printable, bounded."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable()).strip()
    return cleaned[:_MAX_NAME] or "image"


class ImageService:
    """Stores, serves, links and places images; see the module docstring."""

    def __init__(self, database: Database, images_dir: str, max_bytes: int) -> None:
        self._db = database
        self._dir = images_dir
        self.max_bytes = max_bytes

    # -- storage -------------------------------------------------------------------------------
    def _path(self, stored: str) -> str:
        if not _STORED_NAME.match(stored):  # rows are ours, but a path is never built from unchecked text
            raise NotFound("Image file not found")
        return os.path.join(self._dir, stored)

    def _write(self, stored: str, data: bytes) -> None:
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        target = self._path(stored)
        if os.path.isfile(target) and os.path.getsize(target) == len(data):
            return
        fd, temp = tempfile.mkstemp(dir=self._dir, prefix=".upload.")
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            _unlink_quietly(temp)
            raise

    def store(
        self, data: bytes, original_name: str | None, task_id: uuid.UUID | None = None
    ) -> dict[str, Any]:
        """Check, deduplicate and keep an upload; link it to ``task_id`` when given. Returns ImageResponse."""
        if len(data) > self.max_bytes:
            raise ImageTooLarge(
                f"ImageError: Image too large: {len(data)} bytes (max: {self.max_bytes} bytes)"
            )
        if not data:
            raise ImageFormatError("ImageError: the image field is empty")
        kind = sniff(data)
        if kind is None:
            raise ImageFormatError(
                "ImageError: Invalid image format: the content is not a PNG, JPEG, GIF, WebP or BMP image"
            )
        ext, mime = kind
        digest = hashlib.sha256(data).hexdigest()
        stored = f"{digest}.{ext}"
        with self._db.connection():
            if task_id is not None and not Task.select().where(Task.id == task_id).exists():
                raise NotFound(f"Task {task_id} not found")
            self._write(stored, data)
            with self._db.atomic():
                owner = owner_id()
                key = dedupe_key(digest, owner)
                image = Image.get_or_none(Image.hash == key)
                if image is None:
                    try:
                        with self._db.atomic():
                            image = Image.create(
                                file_path=stored,
                                original_name=display_name(original_name),
                                mime_type=mime,
                                size_bytes=len(data),
                                hash=key,
                                user_id=owner,
                            )
                    except pw.IntegrityError:  # the same bytes uploaded at the same moment
                        image = Image.get(Image.hash == key)
                if task_id is not None:
                    self._link(task_id, [image.id])
            return image_json(image)

    def file(self, image_id: uuid.UUID) -> tuple[str, str, str]:
        """(absolute path, MIME type, stored name) of an image's bytes, for the file route."""
        with self._db.connection():
            image = Image.get_or_none(Image.id == image_id)
        if image is None:
            raise NotFound(f"ImageNotFound: image {image_id} not found")
        path = self._path(image.file_path)
        if not os.path.isfile(path):
            raise NotFound(f"ImageNotFound: the file of image {image_id} is missing")
        return path, image.mime_type or "application/octet-stream", image.file_path

    def delete(self, image_id: uuid.UUID) -> None:
        with self._db.connection(), self._db.atomic():
            image = Image.get_or_none(Image.id == image_id)
            if image is None:
                raise NotFound(f"ImageNotFound: image {image_id} not found")
            stored = image.file_path
            image.delete_instance()  # its task links go with it (ON DELETE CASCADE)
            shared = Image.select().where(Image.file_path == stored).exists()  # another account's row
        if not shared:
            _unlink_quietly(self._path(stored))

    def for_task(self, task_id: uuid.UUID) -> list[dict[str, Any]]:
        with self._db.connection():
            return [image_json(i) for i in self._task_images(task_id)]

    def _task_images(self, task_id: uuid.UUID) -> list[Image]:
        return list(
            Image.select()
            .join(TaskImage, on=(TaskImage.image == Image.id))
            .where(TaskImage.task == task_id)
            .order_by(Image.created_at)
        )

    def _link(self, task_id: uuid.UUID, image_ids: Iterable[uuid.UUID]) -> None:
        linked = {row.image_id for row in TaskImage.select(TaskImage.image).where(TaskImage.task == task_id)}
        for image_id in image_ids:
            if image_id not in linked:
                TaskImage.create(task=task_id, image=image_id)
                linked.add(image_id)

    def check_known(self, image_ids: Iterable[str | uuid.UUID]) -> list[uuid.UUID]:
        """The ids as UUIDs; a soft error naming any that is not a stored image (nothing changes)."""
        ids = [uuid.UUID(str(i)) for i in image_ids]
        if ids:
            with self._db.connection():
                found = {row.id for row in Image.select(Image.id).where(Image.id.in_(ids))}
            missing = [str(i) for i in ids if i not in found]
            if missing:
                raise ServiceError(f"Unknown image id(s): {', '.join(missing)}")
        return ids

    def attach_and_place(
        self, task_id: uuid.UUID, image_ids: Iterable[str | uuid.UUID], worktree: str, prompt: str
    ) -> str:
        """A follow-up: its images join the task's, then all of them are placed (see place_for_task)."""
        ids = self.check_known(image_ids)
        if ids:
            with self._db.connection(), self._db.atomic():
                self._link(task_id, ids)
        return self.place_for_task(task_id, worktree, prompt)

    # -- the agent's copy -----------------------------------------------------------------------
    def place_for_task(self, task_id: uuid.UUID, worktree: str, prompt: str) -> str:
        """Copy the task's images into the worktree; returns ``prompt`` with their links made absolute.

        A folder or file the agent replaced by a link (or anything else in the way) is skipped with a
        warning: the attempt goes on without that image rather than writing through the link.
        """
        with self._db.connection():
            images = self._task_images(task_id)
        if images:
            self._copy(worktree, images)
        return canonicalise_image_paths(prompt, worktree)

    def _copy(self, worktree: str, images: list[Image]) -> None:
        try:
            write_into(worktree, f"{IMAGES_DIR}/.gitignore", b"*\n")
        except (OSError, InvalidPath) as exc:
            log.warning("images not copied into %s: %s", worktree, exc)
            return
        for image in images:
            try:
                with open(self._path(image.file_path), "rb") as handle:
                    data = handle.read()
                write_into(worktree, f"{IMAGES_DIR}/{image.file_path}", data)
            except (OSError, InvalidPath, NotFound) as exc:
                log.warning("image %s not copied into %s: %s", image.id, worktree, exc)

    # -- upkeep --------------------------------------------------------------------------------
    def _delete_stray_files(self, cutoff: dt.datetime) -> int:
        """Files of the images folder no row names (an upload cut off between file and row), once old."""
        try:
            entries = list(os.scandir(self._dir))
        except FileNotFoundError:
            return 0
        with self._db.connection():
            known = {row.file_path for row in Image.select(Image.file_path)}
        removed = 0
        for entry in entries:
            stray = entry.name.startswith(".upload.") or (
                _STORED_NAME.match(entry.name) is not None and entry.name not in known
            )
            try:
                old = entry.stat(follow_symlinks=False).st_mtime < cutoff.timestamp()
            except FileNotFoundError:
                continue
            if stray and old and entry.is_file(follow_symlinks=False):
                _unlink_quietly(entry.path)
                removed += 1
        return removed

    def delete_orphans(self, now: dt.datetime | None = None) -> int:
        """Remove images no task and no draft uses, uploaded more than :data:`ORPHAN_GRACE` ago."""
        cutoff = (now or utc_now()) - ORPHAN_GRACE
        with self._db.connection():
            in_drafts: set[str] = set()
            for row in Draft.select(Draft.image_ids).where(Draft.image_ids.is_null(False)):
                if isinstance(row.image_ids, list):
                    in_drafts.update(str(i) for i in row.image_ids)
            linked = TaskImage.select(TaskImage.image)
            candidates = list(Image.select().where(Image.id.not_in(linked) & (Image.created_at < cutoff)))
        removed = self._delete_stray_files(cutoff)
        for image in candidates:
            if str(image.id) in in_drafts:
                continue
            try:
                self.delete(image.id)
                removed += 1
            except NotFound:
                continue
        if removed:
            log.info("removed %d image(s) no task or draft uses", removed)
        return removed


def canonicalise_image_paths(prompt: str, worktree: str) -> str:
    """``![alt](.vibe-images/x.png)`` → ``![alt](<worktree>/.vibe-images/x.png)``, as the reference does."""
    return _PROMPT_LINK.sub(lambda m: f"![{m.group(1)}]({worktree}/{IMAGES_DIR}/{m.group(2)})", prompt)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
