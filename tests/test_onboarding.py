"""The first disclaimer acknowledgement offers the user's existing repositories as projects."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.conftest import make_config
from tests.live_server import LiveServer, live_server


def make_repo(path: Path, touched: float) -> None:
    repo = pygit2.init_repository(str(path), initial_head="main")
    (path / "README").write_text("x\n")
    repo.index.add("README")
    repo.index.write()
    sig = pygit2.Signature("T", "t@example.com")
    repo.create_commit("HEAD", sig, sig, "init", repo.index.write_tree(), [])
    os.utime(path, (touched, touched))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    now = time.time()
    for i, name in enumerate(["newest", "second", "third", "oldest"]):
        make_repo(home / "code" / name, now - 100 * (i + 1))
    (home / "code" / "not-a-repo").mkdir()
    return home


@pytest.fixture
def server(tmp_path: Path, home: Path) -> Iterator[LiveServer]:
    with live_server(make_config(tmp_path, notifications={"desktop": False})) as live:
        yield live


def _acknowledge(server: LiveServer, **changes: Any) -> dict[str, Any]:
    config = server.ok("GET", "/api/info")["config"]
    config.update(changes)
    return server.ok("PUT", "/api/config", json=config)  # type: ignore[no-any-return]


def _projects_after(server: LiveServer, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(projects := server.ok("GET", "/api/projects")) < count:
        assert time.monotonic() < deadline, projects
        time.sleep(0.05)
    return projects  # type: ignore[no-any-return]


def test_first_acknowledgement_adds_the_three_most_recent_repositories(
    server: LiveServer, home: Path
) -> None:
    _acknowledge(server, theme="DARK")  # not the disclaimer: nothing happens
    time.sleep(0.3)
    assert server.ok("GET", "/api/projects") == []
    saved = _acknowledge(server, disclaimer_acknowledged=True)
    assert saved["disclaimer_acknowledged"] is True
    projects = _projects_after(server, 3)
    time.sleep(0.3)
    projects = server.ok("GET", "/api/projects")
    assert sorted(p["name"] for p in projects) == ["newest", "second", "third"]
    assert all(p["git_repo_path"].startswith(str(home / "code")) for p in projects)
    # acknowledging again (or after projects were removed) does not repeat it
    for project in projects:
        server.ok("DELETE", f"/api/projects/{project['id']}")
    _acknowledge(server, disclaimer_acknowledged=True, onboarding_acknowledged=True)
    time.sleep(0.5)
    assert server.ok("GET", "/api/projects") == []


def test_existing_projects_mean_no_auto_setup(server: LiveServer, tmp_path: Path) -> None:
    server.ok(
        "POST",
        "/api/projects",
        json={"name": "mine", "git_repo_path": str(tmp_path / "mine"), "use_existing_repo": False},
    )
    _acknowledge(server, disclaimer_acknowledged=True)
    time.sleep(0.5)
    assert [p["name"] for p in server.ok("GET", "/api/projects")] == ["mine"]


def test_discovery_stays_inside_the_project_roots(tmp_path: Path, home: Path) -> None:
    make_repo(home / "elsewhere" / "fresh", time.time())  # the most recent, but outside the roots
    config = make_config(tmp_path, paths={"project_roots": (str(home / "code"),)})
    with live_server(config) as server:
        _acknowledge(server, disclaimer_acknowledged=True)
        projects = _projects_after(server, 3)
        time.sleep(0.3)
        assert sorted(p["name"] for p in server.ok("GET", "/api/projects")) == ["newest", "second", "third"]
        assert all("elsewhere" not in p["git_repo_path"] for p in projects)
