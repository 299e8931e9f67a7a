"""prepare_directories / check_directories against the real filesystem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from anyon.config.dirs import DirectoryError, check_directories, prepare_directories
from tests.conftest import make_config


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_every_directory_with_tight_modes(tmp_path: Path) -> None:
    log = tmp_path / "anyon" / "logs" / "server.log"
    secrets = tmp_path / "anyon" / "tmp" / "secrets"
    config = make_config(tmp_path, paths={"log_file": str(log), "secrets_dir": str(secrets)})
    assert check_directories(config) == []
    old = os.umask(0o022)
    try:
        prepare_directories(config)
    finally:
        os.umask(old)
    for path in (
        config.paths.data_dir,
        config.paths.worktree_dir,
        config.paths.workspace_dir,
        config.paths.temp_dir,
    ):
        assert mode_of(Path(path)) == 0o750, path
    assert mode_of(log.parent) == 0o750
    assert not log.exists()  # only its directory is prepared
    assert mode_of(secrets) == 0o700
    prepare_directories(config)  # idempotent


def test_existing_directories_keep_their_mode_except_secrets(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir(mode=0o755)
    os.chmod(workspace, 0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    os.chmod(secrets, 0o777)
    config = make_config(tmp_path, paths={"workspace_dir": str(workspace), "secrets_dir": str(secrets)})
    prepare_directories(config)
    assert mode_of(workspace) == 0o755
    assert mode_of(secrets) == 0o700


def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    config = make_config(tmp_path, paths={"worktree_dir": str(blocker / "worktrees")})
    issues = check_directories(config)
    assert [i.key for i in issues] == ["paths.worktree_dir"]
    assert str(blocker) in issues[0].message
    with pytest.raises(DirectoryError, match=r"paths.worktree_dir: cannot create .*blocker"):
        prepare_directories(config)


def test_check_creates_nothing_and_reports_a_missing_token_file(tmp_path: Path) -> None:
    config = make_config(tmp_path, auth={"token_file": str(tmp_path / "missing-token")})
    issues = check_directories(config)
    assert [i.key for i in issues] == ["auth.token_file"]
    assert list(tmp_path.iterdir()) == []
