"""An isolated attempt's own repository and the import of its commits, without Docker.

The export the container would print is produced here by running the same script with the host's git in
the attempt's worktree; the refusals feed the importer what a hostile agent could print instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from anyon.services.git.errors import GitServiceError
from anyon.services.git.isolation import (
    EXPORT_SCRIPT,
    Export,
    ImportRefused,
    import_objects,
    move_branch,
    parse_export,
    synced_tip,
)
from anyon.services.git.repo import signature
from anyon.services.git.worktrees import WorktreeManager

BRANCH = "vk/abcd-task"
CLEAN_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Agent",
    "GIT_AUTHOR_EMAIL": "agent@example.invalid",
    "GIT_COMMITTER_NAME": "Agent",
    "GIT_COMMITTER_EMAIL": "agent@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True, check=True)
    return done.stdout


def make_project(tmp_path: Path) -> Path:
    repo_path = tmp_path / "project"
    repo = pygit2.init_repository(str(repo_path), initial_head="main")
    (repo_path / "README.md").write_text("hello\n")
    repo.index.add("README.md")
    repo.index.write()
    sig = pygit2.Signature("Owner", "owner@example.invalid")
    repo.create_commit("HEAD", sig, sig, "initial", repo.index.write_tree(), [])
    return repo_path


@pytest.fixture
def isolated(tmp_path: Path) -> tuple[Path, Path, WorktreeManager]:
    repo_path = make_project(tmp_path)
    manager = WorktreeManager(str(tmp_path / "worktrees"), isolated=True)
    worktree = Path(manager.create(str(repo_path), BRANCH, str(tmp_path / "worktrees" / "abcd-task"), "main"))
    return repo_path, worktree, manager


def export_from(worktree: Path, *known: str) -> bytes:
    env = {**CLEAN_ENV, "KNOWN": " ".join(known)}
    argv = ["sh", "-c", EXPORT_SCRIPT, "anyon-git", BRANCH]
    done = subprocess.run(argv, cwd=worktree, env=env, capture_output=True, check=True)
    return done.stdout


def tip(repo_path: Path) -> str:
    return str(pygit2.Repository(str(repo_path)).lookup_branch(BRANCH).target)


def test_the_attempt_has_its_own_repository_borrowing_the_projects_objects(
    isolated: tuple[Path, Path, WorktreeManager],
) -> None:
    repo_path, worktree, manager = isolated
    dotgit = worktree / ".git"
    assert dotgit.is_dir() and not dotgit.is_symlink()
    alternates = (dotgit / "objects" / "info" / "alternates").read_text().strip()
    assert alternates == os.path.realpath(repo_path / ".git" / "objects")
    assert git(worktree, "rev-parse", "--git-common-dir").strip() == ".git"
    assert git(worktree, "status", "--porcelain") == ""
    assert git(worktree, "rev-parse", "HEAD").strip() == tip(repo_path)
    assert git(worktree, "config", "user.name").strip() == signature(pygit2.Repository(str(repo_path))).name
    # the server's view is the worktree metadata in the project's .git, with the worktree as workdir
    view = manager.view(str(repo_path), str(worktree))
    assert view == str(repo_path / ".git" / "worktrees" / "abcd-task")
    assert Path(pygit2.Repository(view).workdir).resolve() == worktree.resolve()
    assert synced_tip(view) == tip(repo_path)
    assert manager.is_healthy(str(repo_path), str(worktree))
    assert manager.ensure(str(repo_path), BRANCH, str(worktree)) is False


def test_commits_are_imported_as_data_and_move_only_the_attempts_branch(
    isolated: tuple[Path, Path, WorktreeManager],
) -> None:
    repo_path, worktree, manager = isolated
    before = tip(repo_path)
    main_before = str(pygit2.Repository(str(repo_path)).lookup_branch("main").target)
    (worktree / "sub").mkdir()
    (worktree / "sub" / "new.txt").write_text("new\n")
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "-m", "agent work")
    agent_tip = git(worktree, "rev-parse", "HEAD").strip()
    assert tip(repo_path) == before  # nothing reaches the project by itself

    export = parse_export(export_from(worktree, before))
    assert export.tip == agent_tip and {kind for _, kind, _ in export.records} == {"commit", "tree", "blob"}
    view = manager.view(str(repo_path), str(worktree))
    assert import_objects(str(repo_path), export) == agent_tip
    move_branch(str(repo_path), view, BRANCH, agent_tip)
    repo = pygit2.Repository(str(repo_path))
    assert tip(repo_path) == agent_tip and str(repo.lookup_branch("main").target) == main_before
    assert repo.revparse_single(f"{BRANCH}:sub/new.txt").data == b"new\n"
    assert synced_tip(view) == agent_tip
    assert pygit2.Repository(view).status() == {}  # the view's index follows the imported tip
    # nothing new: the export is the tip alone
    assert parse_export(export_from(worktree, agent_tip)).records == []


def _hostile_exports(worktree: Path, known: str) -> dict[str, bytes]:
    (worktree / "secret.txt").write_text("agent data\n")
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "-m", "work")
    good = export_from(worktree, known)
    head, _, body = good.partition(b"\n")
    parsed = parse_export(good)
    blob = next(r for r in parsed.records if r[1] == "blob")
    blob_header = f"{blob[0]} blob {len(blob[2])}\n".encode()
    start = body.index(blob_header)
    without_blob = body[:start] + body[start + len(blob_header) + len(blob[2]) + 1 :]
    return {
        "tampered content": good.replace(b"agent data", b"agent DATA"),
        "missing object": head + b"\n" + without_blob,
        "malformed header": head + b"\nnot a header at all\n",
        "truncated": good[:-5],
        "missing line": head + b"\n" + b"0" * 40 + b" missing\n",
        "unknown type": good.replace(b" blob ", b" bomb ", 1),
        "tip is a blob": f"{blob[0]}\n".encode() + body,
        "no tip": b"garbage\n",
    }


def test_a_hostile_export_is_refused_and_moves_nothing(isolated: tuple[Path, Path, WorktreeManager]) -> None:
    repo_path, worktree, _manager = isolated
    before = tip(repo_path)
    for name, data in _hostile_exports(worktree, before).items():
        with pytest.raises(ImportRefused):
            export = parse_export(data)
            import_objects(str(repo_path), export)
        assert tip(repo_path) == before, name
    with pytest.raises(ImportRefused):  # a sha that names nothing in the store
        import_objects(str(repo_path), Export("1" * 40, []))


def test_a_linked_worktree_made_before_isolation_is_converted_in_place(tmp_path: Path) -> None:
    repo_path = make_project(tmp_path)
    base = tmp_path / "worktrees"
    linked = WorktreeManager(str(base))
    worktree = Path(linked.create(str(repo_path), BRANCH, str(base / "abcd-task"), "main"))
    assert (worktree / ".git").is_file()
    (worktree / "unsaved.txt").write_text("work in progress\n")

    isolated = WorktreeManager(str(base), isolated=True)
    assert isolated.ensure(str(repo_path), BRANCH, str(worktree)) is False  # converted, not recreated
    assert (worktree / ".git").is_dir()
    assert (worktree / "unsaved.txt").read_text() == "work in progress\n"
    assert git(worktree, "status", "--porcelain").strip() == "?? unsaved.txt"
    assert isolated.is_healthy(str(repo_path), str(worktree))


def test_a_replaced_dot_git_never_redirects_the_server(isolated: tuple[Path, Path, WorktreeManager]) -> None:
    """The agent swaps its .git for a pointer to another repository: the server's view is unaffected."""
    repo_path, worktree, manager = isolated
    elsewhere = make_project(worktree.parent.parent / "elsewhere-root")
    git(worktree, "status")
    subprocess.run(["rm", "-rf", str(worktree / ".git")], check=True)
    (worktree / ".git").write_text(f"gitdir: {elsewhere / '.git'}\n")
    view = manager.view(str(repo_path), str(worktree))
    assert view.startswith(str(repo_path))
    assert not manager.is_healthy(str(repo_path), str(worktree))


def test_copy_files_never_write_through_a_link(tmp_path: Path) -> None:
    repo_path = make_project(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("ORIGINAL\n")
    repo = pygit2.Repository(str(repo_path))
    # committed on the base branch: a link named like a copy_files entry, and a linked directory
    os.symlink(outside / "target.txt", repo_path / "config.env")
    os.symlink(outside, repo_path / "conf")
    repo.index.add("config.env")
    repo.index.add("conf")
    repo.index.write()
    sig = pygit2.Signature("Owner", "owner@example.invalid")
    repo.create_commit("HEAD", sig, sig, "links", repo.index.write_tree(), [repo.head.target])
    # what the project's own checkout holds where copy_files reads (the user's local files)
    (repo_path / "config.env").unlink()
    (repo_path / "config.env").write_text("LOCAL SECRET\n")
    (repo_path / "conf").unlink()
    (repo_path / "conf").mkdir()
    (repo_path / "conf" / "target.txt").write_text("LOCAL CONF\n")
    (repo_path / "plain.env").write_text("PLAIN\n")

    for isolated in (False, True):
        base = tmp_path / f"worktrees-{isolated}"
        manager = WorktreeManager(str(base), isolated=isolated)
        worktree = manager.create(str(repo_path), f"b-{isolated}", str(base / f"abcd-{isolated}"), "main")
        copied = manager.copy_files(str(repo_path), worktree, "config.env, conf, plain.env")
        assert copied == ["plain.env"]
        assert Path(worktree, "plain.env").read_text() == "PLAIN\n"
        assert os.path.islink(Path(worktree, "config.env")) and os.path.islink(Path(worktree, "conf"))
    assert (outside / "target.txt").read_text() == "ORIGINAL\n"
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]


def test_the_host_git_cli_reads_no_global_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter in the server user's global config never runs when the server checks out a worktree."""
    marker = tmp_path / "global-filter-ran"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f'[filter "x"]\n\tsmudge = "touch {marker}; cat"\n\trequired = false\n')
    monkeypatch.setenv("HOME", str(home))
    repo_path = make_project(tmp_path)
    repo = pygit2.Repository(str(repo_path))
    (repo_path / ".gitattributes").write_text("*.x filter=x\n")
    (repo_path / "data.x").write_text("payload\n")
    repo.index.add(".gitattributes")
    repo.index.add("data.x")
    repo.index.write()
    sig = pygit2.Signature("Owner", "owner@example.invalid")
    repo.create_commit("HEAD", sig, sig, "attrs", repo.index.write_tree(), [repo.head.target])
    manager = WorktreeManager(str(tmp_path / "worktrees"))
    worktree = manager.create(str(repo_path), "b", str(tmp_path / "worktrees" / "abcd-x"), "main")
    assert Path(worktree, "data.x").read_text() == "payload\n"
    assert not marker.exists()


def test_missing_project_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GitServiceError):
        manager = WorktreeManager(str(tmp_path / "w"), isolated=True)
        manager.view(str(tmp_path / "nope"), str(tmp_path / "w" / "a"))
