"""systemd's readiness protocol (``Type=notify``) in a few lines of socket code.

systemd passes ``$NOTIFY_SOCKET`` (a datagram socket path, or ``@name`` in the abstract namespace) and
waits for ``READY=1`` before it counts the unit as started — so ``systemctl start anyon`` returns only
once the database is migrated, the checks passed and the listener is up, and a unit ordered after
anyon never talks to a server that is still starting. ``STATUS=`` lines show in ``systemctl status``;
``STOPPING=1`` says a shutdown is under way. Without ``$NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        if address.startswith("@"):
            self._address = "\0" + address[1:]
        elif address.startswith("/"):
            self._address = address

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False (logged once per call) when it cannot."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            log.warning("cannot notify systemd at NOTIFY_SOCKET: %s", exc)
            return False
        return True

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def ready(self, status: str = "serving") -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stopping(self, status: str = "shutting down") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")
