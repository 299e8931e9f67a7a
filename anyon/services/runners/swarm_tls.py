"""The client certificate of the node engines, picked up again when its files change (rotation, no restart).

``docker.swarm_tls_dir`` holds ``ca.pem``, ``cert.pem`` and ``key.pem``. Ops rotate them by replacing the
files. Before a node client builds or reuses a connection it asks :meth:`TLSSource.current`, which
compares each file's (mtime, size, inode) with those of the set in use: three ``stat`` calls, no watcher
thread. Changed files are loaded and checked *as a set* (the CA parses, the key matches the certificate)
before they replace the working set, so a half-written rotation — cert.pem already new, key.pem still old —
leaves the old set in use, with one warning per state of the files; the next change is looked at again.

Why a snapshot: docker-py (requests/urllib3) reads the certificate files by path for every new
connection. Each accepted set is copied into a private directory (0700) first, and docker-py is pointed
at those copies, so its connections and the exec streams (an :class:`ssl.SSLContext` made from the same
copies) use exactly the set that was checked, never a file in the middle of being replaced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import ssl
import tempfile
import threading

from anyon.services.runners.base import RunnerError

log = logging.getLogger(__name__)

#: the files of ``docker.swarm_tls_dir``, in the order (CA, client certificate, client key)
TLS_FILE_NAMES = ("ca.pem", "cert.pem", "key.pem")

Stamp = tuple[tuple[int, int, int] | None, ...]


@dataclasses.dataclass(frozen=True)
class TLSMaterial:
    """One checked set: the paths of its private copies, and the client context made from them."""

    files: tuple[str, str, str]
    context: ssl.SSLContext
    snapshot_dir: str

    def discard(self) -> None:
        shutil.rmtree(self.snapshot_dir, ignore_errors=True)


def stamp(tls_dir: str) -> Stamp:
    """(mtime, size, inode) of each file; ``None`` for a missing one. Replacing a file changes it."""
    marks: list[tuple[int, int, int] | None] = []
    for name in TLS_FILE_NAMES:
        try:
            st = os.stat(os.path.join(tls_dir, name))
        except OSError:
            marks.append(None)
        else:
            marks.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(marks)


def tls_files(tls_dir: str) -> tuple[str, str, str]:
    """(ca.pem, cert.pem, key.pem) of ``docker.swarm_tls_dir``; a missing one is named."""
    paths = tuple(os.path.join(tls_dir, name) for name in TLS_FILE_NAMES)
    for path in paths:
        if not os.path.isfile(path):
            raise RunnerError(
                f"docker.swarm_tls_dir: {path} does not exist (the directory needs ca.pem, cert.pem, key.pem)"
            )
    return paths[0], paths[1], paths[2]


def load(tls_dir: str) -> TLSMaterial:
    """Copy the three files into a private directory and check them together; :class:`RunnerError` if not."""
    contents: list[bytes] = []
    for path in tls_files(tls_dir):
        try:
            with open(path, "rb") as f:
                contents.append(f.read())
        except OSError as exc:
            raise RunnerError(f"docker.swarm_tls_dir: cannot load the TLS files: {exc}") from exc
    snapshot = tempfile.mkdtemp(prefix="anyon-swarm-tls-")  # mode 0700
    try:
        copies = []
        for name, data in zip(TLS_FILE_NAMES, contents, strict=True):
            path = os.path.join(snapshot, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            copies.append(path)
        ca, cert, key = copies
        context = ssl.create_default_context(cafile=ca)
        context.load_cert_chain(cert, key)  # refuses a key that does not match the certificate
    except (OSError, ssl.SSLError, ValueError) as exc:
        shutil.rmtree(snapshot, ignore_errors=True)
        raise RunnerError(f"docker.swarm_tls_dir: cannot load the TLS files: {exc}") from exc
    return TLSMaterial((ca, cert, key), context, snapshot)


class TLSSource:
    """The set of ``docker.swarm_tls_dir`` in use, replaced by a newer one only once that one checks out.

    Shared by every node client of a runner, so a rotation is loaded (and a bad one warned about) once.
    Thread-safe: node clients ask from the event loop and from their worker threads.
    """

    def __init__(self, tls_dir: str) -> None:
        self.tls_dir = tls_dir
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._refused: Stamp | None = None
        self._material: TLSMaterial | None = None
        #: replaced sets: clients made before the rotation may still open connections with them
        self._retired: list[TLSMaterial] = []

    def current(self) -> TLSMaterial:
        """The set to use now; raises :class:`RunnerError` only when no set was ever loaded."""
        seen = stamp(self.tls_dir)
        material = self._material
        if material is not None and seen in (self._stamp, self._refused):
            return material
        with self._lock:
            material = self._material
            if material is not None and seen in (self._stamp, self._refused):
                return material
            try:
                fresh = load(self.tls_dir)  # the files as they are now: never older than ``seen``
            except RunnerError as exc:
                if material is None:
                    raise
                self._refused = seen
                log.warning("%s; the node engines keep the certificate loaded before", exc)
                return material
            if material is not None:
                self._retired.append(material)
                log.info("docker.swarm_tls_dir changed: new node engine connections use the new files")
            self._material, self._stamp, self._refused = fresh, seen, None
            return fresh

    def close(self) -> None:
        """Remove the private copies (once every client using them is closed)."""
        with self._lock:
            for material in [*self._retired, *([self._material] if self._material else [])]:
                with contextlib.suppress(OSError):
                    material.discard()
            self._retired.clear()
            self._material = None
            self._stamp = None
