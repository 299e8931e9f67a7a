"""Git's smart HTTP for the stand-in GitHub: real bare repositories under a folder, served by
``git http-backend``, behind the same basic auth GitHub takes (``x-access-token``/the token).

Without the token every git request gets 401 with a ``WWW-Authenticate`` challenge, as GitHub answers a
private repository, so libgit2 has to ask its credentials callback.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any


def accepted(headers: Any, tokens: set[str]) -> bool:
    wanted = {"Basic " + base64.b64encode(f"x-access-token:{t}".encode()).decode() for t in tokens}
    return headers.get("Authorization") in wanted


def serve(
    root: Path, method: str, path: str, query: str, headers: Any, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Run ``git http-backend`` for one request; (status, headers, body) of its CGI answer."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(root),
        "REMOTE_USER": "x-access-token",  # authenticated: receive-pack (push) is allowed too
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": headers.get("Content-Type") or "",
        "CONTENT_LENGTH": str(len(body)),
    }
    if headers.get("Content-Encoding"):
        env["HTTP_CONTENT_ENCODING"] = headers["Content-Encoding"]
    if headers.get("Git-Protocol"):
        env["GIT_PROTOCOL"] = headers["Git-Protocol"]
    done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, payload = done.stdout.partition(b"\n\n")
    status, out = 200, {}
    for line in head.decode().splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            out[name.strip()] = value.strip()
    return status, out, payload
