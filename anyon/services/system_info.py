"""The ``environment`` block of ``/api/info`` (types.md §3)."""

from __future__ import annotations

import hashlib
import os
import platform


def environment() -> dict[str, str]:
    system = platform.system()
    os_type = {"Darwin": "Mac OS"}.get(system, system)
    if system == "Linux":
        try:
            release = platform.freedesktop_os_release()
            os_type = release.get("NAME", "Linux")
            version = release.get("VERSION_ID", platform.release())
        except OSError:
            version = platform.release()
    else:
        version = platform.release()
    machine = platform.machine() or "unknown"
    bits = platform.architecture()[0].replace("bit", "-bit")
    return {"os_type": os_type, "os_version": version, "os_architecture": machine, "bitness": bits}


def analytics_user_id() -> str:
    """A stable per-machine id (the reference's ``npm_user_<16 hex>``): hash of machine-id, user and home."""
    try:
        with open("/etc/machine-id") as handle:
            machine_id = handle.read().strip()
    except OSError:
        machine_id = platform.node()
    seed = f"{machine_id}:{os.environ.get('USER', '')}:{os.path.expanduser('~')}"
    return "npm_user_" + hashlib.sha256(seed.encode()).hexdigest()[:16]
