"""File search (spec §6) on a real repository: modes, match types, ranking, HEAD-based invalidation."""

from __future__ import annotations

from pathlib import Path

import pytest

from anyon.services.git import GitService, NotARepository
from anyon.services.git.file_search import FileSearch, InvalidSearch


def write(root: Path, rel: str, text: str = "x\n") -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    svc = GitService()
    root = tmp_path / "repo"
    svc.init_repo(str(root))
    write(root, ".gitignore", ".env\nsecrets/\n")
    write(root, "src/login/form.tsx")
    write(root, "src/login/api.ts")
    write(root, "src/utils/login_helper.ts")
    write(root, "docs/guide.md")
    write(root, "node_modules/login/index.js")
    svc.commit_all(str(root), "initial")
    write(root, ".env", "SECRET=1\n")
    write(root, "secrets/login.key")
    write(root, "notes/untracked_login.txt")
    return root


def test_taskform_respects_gitignore(repo: Path) -> None:
    fs = FileSearch()
    results = fs.search(str(repo), "login")
    paths = [r["path"] for r in results]
    assert "secrets/login.key" not in paths and not any(p.startswith("node_modules") for p in paths)
    assert "notes/untracked_login.txt" in paths  # untracked but not ignored
    kinds = {r["path"]: r["match_type"] for r in results}
    assert kinds["src/login"] == "FileName"  # a directory whose own name matches
    assert kinds["src/utils/login_helper.ts"] == "FileName"
    assert kinds["src/login/api.ts"] == "DirectoryName"
    assert all(set(r) == {"path", "is_file", "match_type"} for r in results)
    assert {r["path"]: r["is_file"] for r in results}["src/login"] is False
    order = [r["match_type"] for r in results]
    assert order == sorted(order, key=["FileName", "DirectoryName", "FullPath"].index)


def test_settings_mode_includes_ignored(repo: Path) -> None:
    fs = FileSearch()
    assert [r["path"] for r in fs.search(str(repo), ".env", mode="settings")] == [".env"]
    assert fs.search(str(repo), ".env", mode="taskform") == []
    assert any(r["path"].startswith("secrets") for r in fs.search(str(repo), "secrets", mode="settings"))


def test_fullpath_match_and_limit(repo: Path) -> None:
    for i in range(15):
        write(repo, f"many/file_{i}.txt")
    fs = FileSearch()
    assert len(fs.search(str(repo), "file_")) == 10
    assert fs.search(str(repo), "docs/gu")[0] == {
        "path": "docs/guide.md",
        "is_file": True,
        "match_type": "FullPath",
    }
    assert fs.search(str(repo), "GUIDE")[0]["path"] == "docs/guide.md"  # case-insensitive


def test_cache_invalidated_when_head_moves(repo: Path) -> None:
    fs = FileSearch()
    assert fs.search(str(repo), "brand_new") == []
    write(repo, "brand_new.py")
    assert fs.search(str(repo), "brand_new") == []  # cached: HEAD did not move
    GitService().commit_all(str(repo), "add file")
    assert [r["path"] for r in fs.search(str(repo), "brand_new")] == ["brand_new.py"]


def test_history_ranks_frequently_changed_files_first(repo: Path) -> None:
    svc = GitService()
    write(repo, "a/config.py", "1")
    write(repo, "b/config.py", "1")
    svc.commit_all(str(repo), "both")
    for i in range(3):
        write(repo, "b/config.py", str(i + 2))
        svc.commit_all(str(repo), f"touch b {i}")
    assert [r["path"] for r in FileSearch().search(str(repo), "config.py")] == ["b/config.py", "a/config.py"]


def test_bad_input(repo: Path, tmp_path: Path) -> None:
    fs = FileSearch()
    with pytest.raises(InvalidSearch):
        fs.search(str(repo), "  ")
    with pytest.raises(InvalidSearch):
        fs.search(str(repo), "x", mode="everything")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARepository):
        fs.search(str(tmp_path / "plain"), "x")


def test_lru_bound(tmp_path: Path) -> None:
    fs = FileSearch(max_repos=2)
    svc = GitService()
    for name in "abc":
        root = tmp_path / name
        svc.init_repo(str(root))
        write(root, f"{name}.txt")
        svc.commit_all(str(root), "x")
        assert fs.search(str(root), name)[0]["path"] == f"{name}.txt"
    assert len(fs._cache) == 2
