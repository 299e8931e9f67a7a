"""Per-attempt secrets directories for cloud containers (spec §4.4 ``prepare_env``).

Each attempt gets ``<secrets_root>/<attempt_id>`` (0700, files 0600, owned by the container user)
bind-mounted read-only into its container. Files are replaced atomically so a command starting while
a token is being rotated never reads half a file. Which variables a command gets is derived from the
files present, so it survives a server restart without any in-memory state.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from anyon.services.runners.base import RunnerError

#: Where the directory appears inside the container (the reference's path; the image also sets it).
CONTAINER_SECRETS_DIR = "/tmp/anyon-secrets"
GITHUB_CREDENTIALS = "github-credentials"
GITHUB_TOKEN_FILE = "github-token"
GITCONFIG = "gitconfig"
CLAUDE_CONFIG = "claude-config.json"

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_attempt_id(attempt_id: str) -> str:
    """Attempt ids become path components and label values: refuse anything that could escape."""
    if not _SAFE_ID.match(attempt_id) or ".." in attempt_id:
        raise RunnerError(f"invalid attempt id {attempt_id!r}: expected letters, digits, '-', '_' or '.'")
    return attempt_id


class SecretsDirs:
    """Creates, fills and removes the per-attempt secrets directories under one root."""

    def __init__(self, root: str | Path, uid: int, gid: int) -> None:
        self.root = Path(root)
        self._uid = uid
        self._gid = gid

    def path(self, attempt_id: str) -> Path:
        return self.root / check_attempt_id(attempt_id)

    def ensure(self, attempt_id: str) -> Path:
        """Create the directory (0700, owned by the container user) and return its host path."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.path(attempt_id)
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
        self._own(path)
        return path

    def write(self, attempt_id: str, github_token: str | None, claude_credentials: str | None) -> Path:
        """(Re)write the secrets of an attempt; ``None`` removes that secret."""
        path = self.ensure(attempt_id)
        if github_token is not None and ("\n" in github_token or not github_token.strip()):
            raise RunnerError("the GitHub token must be a single non-empty line")
        if github_token:
            credentials_file = f"{CONTAINER_SECRETS_DIR}/{GITHUB_CREDENTIALS}"
            self._write_file(path / GITHUB_CREDENTIALS, f"https://x-access-token:{github_token}@github.com\n")
            self._write_file(path / GITHUB_TOKEN_FILE, github_token)
            self._write_file(path / GITCONFIG, f"[credential]\n\thelper = store --file={credentials_file}\n")
        else:
            for name in (GITHUB_CREDENTIALS, GITHUB_TOKEN_FILE, GITCONFIG):
                (path / name).unlink(missing_ok=True)
        if claude_credentials:
            self._write_file(path / CLAUDE_CONFIG, claude_credentials)
        else:
            (path / CLAUDE_CONFIG).unlink(missing_ok=True)
        return path

    def env(self, attempt_id: str) -> dict[str, str]:
        """The variables a command in the attempt's container gets for the secrets present."""
        path = self.path(attempt_id)
        env = {"ANYON_SECRET_DIR": CONTAINER_SECRETS_DIR}
        if (path / GITCONFIG).is_file():
            env["GIT_CONFIG_GLOBAL"] = f"{CONTAINER_SECRETS_DIR}/{GITCONFIG}"
        token_file = path / GITHUB_TOKEN_FILE
        if token_file.is_file():
            token = token_file.read_text()
            env["GITHUB_TOKEN"] = token
            env["GH_TOKEN"] = token
        if (path / CLAUDE_CONFIG).is_file():
            env["CLAUDE_CONFIG_PATH"] = f"{CONTAINER_SECRETS_DIR}/{CLAUDE_CONFIG}"
        return env

    def remove(self, attempt_id: str) -> bool:
        path = self.path(attempt_id)
        if not path.exists():
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    def attempt_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _SAFE_ID.match(p.name))

    def _write_file(self, target: Path, text: str) -> None:
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        self._own(tmp)
        os.replace(tmp, target)

    def _own(self, path: Path) -> None:
        # Only root can give files away; otherwise the server user *is* the container user (deploy docs).
        if os.geteuid() == 0 and (self._uid, self._gid) != (0, 0):
            os.chown(path, self._uid, self._gid)
