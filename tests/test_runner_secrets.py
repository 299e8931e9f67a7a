"""Parts of the Docker runner that need no engine: user resolution and the secrets directories."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from anyon.services.runners import RunnerError
from anyon.services.runners.container_spec import resolve_user
from anyon.services.runners.secrets_dir import SecretsDirs


def test_resolve_user_accepts_names_and_numeric_ids() -> None:
    root = pwd.getpwnam("root")
    assert resolve_user("root") == (root.pw_uid, root.pw_gid)
    assert resolve_user("root:root") == (0, 0)
    assert resolve_user("1234:5678") == (1234, 5678)
    assert resolve_user("0") == (0, root.pw_gid)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("no-such-user-anyon", "no user 'no-such-user-anyon'"), ("root:no-such-group-anyon", "no group")],
)
def test_resolve_user_names_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(RunnerError, match=message):
        resolve_user(spec)


def test_secrets_are_private_and_removed_when_unset(tmp_path: Path) -> None:
    dirs = SecretsDirs(tmp_path / "secrets", os.getuid(), os.getgid())
    path = dirs.write("att-1", "tok123", '{"k": 1}')
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.iterdir()) == [
        "claude-config.json",
        "gitconfig",
        "github-credentials",
        "github-token",
    ]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in path.iterdir())
    assert dirs.env("att-1") == {
        "ANYON_SECRET_DIR": "/tmp/anyon-secrets",
        "GIT_CONFIG_GLOBAL": "/tmp/anyon-secrets/gitconfig",
        "GITHUB_TOKEN": "tok123",
        "GH_TOKEN": "tok123",
        "CLAUDE_CONFIG_PATH": "/tmp/anyon-secrets/claude-config.json",
    }
    dirs.write("att-1", None, None)
    assert list(path.iterdir()) == []
    assert dirs.env("att-1") == {"ANYON_SECRET_DIR": "/tmp/anyon-secrets"}
    assert dirs.attempt_ids() == ["att-1"]
    assert dirs.remove("att-1") and not path.exists()


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "a..b"])
def test_attempt_ids_cannot_escape_the_secrets_root(tmp_path: Path, bad: str) -> None:
    dirs = SecretsDirs(tmp_path, os.getuid(), os.getgid())
    with pytest.raises(RunnerError, match="invalid attempt id"):
        dirs.ensure(bad)


def test_a_multi_line_token_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    dirs = SecretsDirs(tmp_path / "secrets", os.getuid(), os.getgid())
    with pytest.raises(RunnerError, match="single non-empty line"):
        dirs.write("att-2", "tok\n[credential]", None)
    assert not (dirs.path("att-2") / "gitconfig").exists()
