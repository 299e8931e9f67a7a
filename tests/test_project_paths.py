"""Project, workspace and picker paths against ``paths.project_roots``, played as an attacker through the
real server: symlinks out of a root, ``..``, relative paths, one repository under two spellings, the
pickers outside the roots, and a folder of the user's files that is not a repository. Every refusal is
checked to leave the database rows and the files as they were."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_api_core import soft_error

OUTSIDE_ROOTS = "outside the permitted project roots"


def snapshot(top: Path) -> dict[str, str]:
    """Every path under ``top`` (the server's own data dir left out) with what it is / points to."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == top and "anyon" in dirnames:
            dirnames.remove("anyon")
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path)] = f"link:{os.readlink(path)}" if path.is_symlink() else str(path.stat().st_size)
    return found


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    root = tmp_path / "roots" / "inside"
    outside = tmp_path / "outside"
    root.mkdir(parents=True)
    outside.mkdir()
    pygit2.init_repository(str(outside / "repo"))
    (outside / "secret.txt").write_text("keep out")
    (root / "escape").symlink_to(outside)  # a symlink inside the root pointing out of it
    (root / "escape-repo").symlink_to(outside / "repo")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the pickers' default, outside the roots
    return {"tmp": tmp_path, "root": root, "outside": outside, "home": home}


@pytest.fixture
def rooted(layout: dict[str, Path]) -> Iterator[LiveServer]:
    config = make_config(layout["tmp"], paths={"project_roots": (str(layout["root"]),)})
    with live_server(config) as live:
        yield live


@pytest.fixture
def unrooted(layout: dict[str, Path]) -> Iterator[LiveServer]:
    with live_server(make_config(layout["tmp"])) as live:
        yield live


def create(server: LiveServer, path: str, existing: bool, name: str = "p") -> Any:
    return server.post(
        "/api/projects", json={"name": name, "git_repo_path": path, "use_existing_repo": existing}
    )


def refused(server: LiveServer, top: Path, method: str, route: str, **kw: Any) -> str:
    """Send a request that must be refused; assert the soft error and that nothing changed."""
    rows, files = server.ok("GET", "/api/projects"), snapshot(top)
    message = soft_error(server.client.request(method, route, **kw))
    assert server.ok("GET", "/api/projects") == rows
    assert snapshot(top) == files
    return message


def test_symlinks_and_dotdot_out_of_a_root_are_refused(rooted: LiveServer, layout: dict[str, Path]) -> None:
    root, outside, tmp = layout["root"], layout["outside"], layout["tmp"]
    attacks = [
        (str(root / "escape-repo"), True),  # a symlink in the root to a repository outside
        (str(root / "escape" / "repo"), True),  # through a symlinked parent
        (str(root / "escape"), False),  # would `git init` the outside folder
        (str(root / "escape" / "new-project"), False),  # would create a folder outside
        (f"{root}/../../outside/repo", True),
        (f"{root}/sub/../../../outside/new", False),
        (str(outside / "repo"), True),
        ("/proc/self/cwd", True),
    ]
    for path, existing in attacks:
        body = {"name": "p", "git_repo_path": path, "use_existing_repo": existing}
        message = refused(rooted, tmp, "POST", "/api/projects", json=body)
        assert OUTSIDE_ROOTS in message or "not allowed" in message, (path, message)
    assert not (outside / ".git").exists() and not (outside / "new-project").exists()
    assert not (outside / "new").exists()
    # `..` that stays inside the root is fine, and the path is stored resolved
    made = rooted.ok(
        "POST",
        "/api/projects",
        json={"name": "ok", "git_repo_path": f"{root}/x/../ok", "use_existing_repo": False},
    )
    assert made["git_repo_path"] == str(root / "ok")


def test_relative_paths_are_refused(unrooted: LiveServer, layout: dict[str, Path]) -> None:
    cwd_before = sorted(os.listdir(os.getcwd()))
    for path in ("repo", "./repo", "../repo", "outside/repo", "~no-such-user-7f3a/repo"):
        for existing in (True, False):
            body = {"name": "p", "git_repo_path": path, "use_existing_repo": existing}
            message = refused(unrooted, layout["tmp"], "POST", "/api/projects", json=body)
            assert "must be absolute" in message, message
    for route in ("/api/filesystem/directory", "/api/filesystem/git-repos"):
        assert "must be absolute" in refused(
            unrooted, layout["tmp"], "GET", route, params={"path": "outside"}
        )
    assert sorted(os.listdir(os.getcwd())) == cwd_before


def test_one_repository_cannot_be_registered_twice(rooted: LiveServer, layout: dict[str, Path]) -> None:
    root, tmp = layout["root"], layout["tmp"]
    first = rooted.ok(
        "POST",
        "/api/projects",
        json={"name": "a", "git_repo_path": str(root / "repo"), "use_existing_repo": False},
    )
    (root / "alias").symlink_to(root / "repo")
    (root / "dir-alias").symlink_to(root)
    spellings = [
        f"{root}/repo/",
        f"{root}//repo",
        f"{root}/./repo",
        f"{root}/sub/../repo",
        str(root / "alias"),
        str(root / "dir-alias" / "repo"),
    ]
    for spelling in spellings:
        for existing in (True, False):
            body = {"name": "b", "git_repo_path": spelling, "use_existing_repo": existing}
            message = refused(rooted, tmp, "POST", "/api/projects", json=body)
            assert message == "A project with this git repository path already exists", spelling
    # moving another project onto it through an alias is refused too
    other = rooted.ok(
        "POST",
        "/api/projects",
        json={"name": "c", "git_repo_path": str(root / "other"), "use_existing_repo": False},
    )
    update = {
        "git_repo_path": str(root / "alias"),
        "setup_script": None,
        "dev_script": None,
        "cleanup_script": None,
        "copy_files": None,
    }
    message = refused(rooted, tmp, "PUT", f"/api/projects/{other['id']}", json=update)
    assert message == "A project with this git repository path already exists"
    assert [p["id"] for p in rooted.ok("GET", "/api/projects")] == [other["id"], first["id"]]


def test_pickers_stay_inside_the_roots(rooted: LiveServer, layout: dict[str, Path]) -> None:
    root, outside, tmp = layout["root"], layout["outside"], layout["tmp"]
    pygit2.init_repository(str(root / "mine"))
    (root / "folder").mkdir()
    for route in ("/api/filesystem/directory", "/api/filesystem/git-repos"):
        for path in (str(outside), str(root / "escape"), str(layout["home"]), f"{root}/../../outside"):
            assert OUTSIDE_ROOTS in refused(rooted, tmp, "GET", route, params={"path": path}), (route, path)
    # inside a root: listed, but not the symlinks that lead out of it
    listing = rooted.ok("GET", "/api/filesystem/directory", params={"path": str(root)})
    assert [e["name"] for e in listing["entries"]] == ["folder", "mine"]
    # an ancestor of the root lists only the way down to it
    for ancestor in ("/", str(tmp), str(tmp / "roots")):
        listing = rooted.ok("GET", "/api/filesystem/directory", params={"path": ancestor})
        names = [e["path"] for e in listing["entries"]]
        assert len(names) == 1 and str(root).startswith(names[0]), (ancestor, names)
    # without a path (home is outside the roots) the picker opens at the root
    assert rooted.ok("GET", "/api/filesystem/directory")["current_path"] == str(root)
    # discovery finds only the repositories inside the roots
    for params in ({}, {"path": "/"}, {"path": str(tmp)}, {"path": str(root)}):
        repos = rooted.ok("GET", "/api/filesystem/git-repos", params=params)
        assert [r["path"] for r in repos] == [str(root / "mine")], params


def test_a_folder_of_files_is_never_turned_into_a_repository(
    unrooted: LiveServer, layout: dict[str, Path]
) -> None:
    tmp = layout["tmp"]
    folder = tmp / "my-files"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for existing, expected in (
        (False, "is not empty and is not a git repository"),
        (True, "not a git repository"),
    ):
        message = refused(
            unrooted,
            tmp,
            "POST",
            "/api/projects",
            json={"name": "p", "git_repo_path": str(folder), "use_existing_repo": existing},
        )
        assert expected in message
    assert not (folder / ".git").exists()
    # an empty folder, or a new one, is what "create a new repository" means
    (tmp / "empty").mkdir()
    for path in (tmp / "empty", tmp / "brand-new"):
        made = unrooted.ok(
            "POST",
            "/api/projects",
            json={"name": path.name, "git_repo_path": str(path), "use_existing_repo": False},
        )
        assert pygit2.Repository(made["git_repo_path"]).head.shorthand == "main"


def test_a_stored_path_that_turns_into_a_symlink_out_of_the_roots_is_refused_on_use(
    rooted: LiveServer, layout: dict[str, Path]
) -> None:
    root, outside = layout["root"], layout["outside"]
    project = rooted.ok(
        "POST",
        "/api/projects",
        json={"name": "moved", "git_repo_path": str(root / "moved"), "use_existing_repo": False},
    )
    task = rooted.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "t"})
    # the folder is replaced by a symlink to a repository outside the roots
    os.rename(root / "moved", outside / "moved")
    (root / "moved").symlink_to(outside / "moved")
    pid = project["id"]
    for route, params in ((f"/api/projects/{pid}/branches", {}), (f"/api/projects/{pid}/search", {"q": "x"})):
        message = refused(rooted, layout["tmp"], "GET", route, params=params)
        assert "now resolves to" in message and OUTSIDE_ROOTS in message
    start = {"task_id": task["id"], "executor_profile_id": {"executor": "CLAUDE_CODE"}, "base_branch": "main"}
    message = refused(rooted, layout["tmp"], "POST", "/api/task-attempts", json=start)
    assert "now resolves to" in message
    assert rooted.ok("GET", "/api/task-attempts", params={"task_id": task["id"]}) == []
    assert sorted(os.listdir(outside / "moved")) == [".git"]  # no worktree, no file written there
