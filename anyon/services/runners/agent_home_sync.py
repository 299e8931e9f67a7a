"""Keeping a container's copy of the agent home current: a login made after the container was created.

A cloud container's HOME starts as a copy of the deployment's agent home (mounted read-only), so its agents
are signed in. The copy is the agent's own: it may change it, never the shared login. A login made in the
browser *after* the container was created lands in the agent home only; so before each process starts, the
runner compares a cheap stamp of the agent home (names, sizes and mtimes of its entries, no file contents)
with the stamp of the container's last copy, and copies again only when they differ. The stamp of the last
copy is kept in the container's HOME too, so a server restart does not copy again for nothing.

A copy adds and overwrites files; it removes none (a logout does not reach a running container's copy).
"""

from __future__ import annotations

import hashlib
import os

#: Entries of the agent home the stamp looks at, at most (a bigger home: changes past them go unseen).
MAX_STAMPED_ENTRIES = 20_000
#: Where the container keeps the stamp of its last copy (inside its own HOME).
STAMP_FILE = ".anyon-agent-home-stamp"
#: ``sh -c SCRIPT <agent home> <stamp>``: copy the agent home into HOME unless this stamp was copied already.
REFRESH_SCRIPT = (
    f's="$HOME/{STAMP_FILE}"; [ "$(cat "$s" 2>/dev/null)" = "$1" ] && exit 0; '
    'cp -R "$0"/. "$HOME"/ 2>/dev/null; printf "%s\\n" "$1" > "$s" 2>/dev/null; exit 0'
)


def home_stamp(path: str) -> str | None:
    """A fingerprint of the tree at ``path`` that changes when a login adds or rewrites a file in it.

    ``None`` when there is no such directory. Links are not followed (the mount shows them as they are).
    """
    if not os.path.isdir(path):
        return None
    digest = hashlib.sha256()
    seen = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in [".", *sorted(files), *dirs]:
            full = os.path.join(root, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            rel = os.path.relpath(full, path)
            digest.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="replace"))
            seen += 1
            if seen >= MAX_STAMPED_ENTRIES:
                return digest.hexdigest()[:32]
    return digest.hexdigest()[:32]
