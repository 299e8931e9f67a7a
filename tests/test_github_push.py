"""Push and clone through libgit2 against real local bare repositories, and the remote URL policy.

``file://`` remotes are allowed here only through the ``github.allow_local_remotes`` setting (a test hook
no API call can set); the API tests show a client cannot reach local paths or other hosts.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pygit2
import pytest

from anyon.services.errors import ServiceError
from anyon.services.github.remotes import RemotePolicy
from anyon.services.github.transport import PushRejected, clone, push_branch
from tests.conftest import make_config
from tests.github.standin import TOKEN, github_standin
from tests.live_server import live_server
from tests.test_github_api import github_settings

SIG = pygit2.Signature("Test", "test@example.com")


def commit(repo: pygit2.Repository, ref: str, name: str, text: str, parents: list[pygit2.Oid]) -> pygit2.Oid:
    blob = repo.create_blob(text.encode())
    builder = repo.TreeBuilder()
    builder.insert(name, blob, pygit2.GIT_FILEMODE_BLOB)
    return repo.create_commit(ref, SIG, SIG, f"change {name}", builder.write(), parents)


def setup_repos(tmp_path: Path) -> tuple[pygit2.Repository, pygit2.Repository, str]:
    """A work repository with branch feature, and an empty bare remote at .../octo/widget.git."""
    bare_path = tmp_path / "remotes" / "octo" / "widget.git"
    bare = pygit2.init_repository(str(bare_path), bare=True)
    work = pygit2.init_repository(str(tmp_path / "work"), initial_head="main")
    base = commit(work, "refs/heads/main", "a.txt", "a", [])
    commit(work, "refs/heads/feature", "b.txt", "b", [base])
    work.remotes.create("origin", f"file://{bare_path}")
    return work, bare, f"file://{bare_path}"


LOCAL = RemotePolicy("https://github.com", allow_local=True)


def test_push_creates_then_fast_forwards_the_remote_branch(tmp_path: Path) -> None:
    work, bare, url = setup_repos(tmp_path)
    remote = LOCAL.check(url)
    assert (remote.owner, remote.name, remote.local) == ("octo", "widget", True)
    pushed = push_branch(work.workdir, "feature", remote, None)
    assert str(bare.references["refs/heads/feature"].target) == pushed
    tip = work.references["refs/heads/feature"].target
    new = commit(work, "refs/heads/feature", "c.txt", "c", [tip])
    assert push_branch(work.workdir, "feature", remote, None) == str(new)
    assert bare.references["refs/heads/feature"].target == new
    assert work.references["refs/remotes/origin/feature"].target == new  # the lease for a later push
    assert push_branch(work.workdir, "feature", remote, None) == str(new)  # nothing to do: fine


def test_a_non_fast_forward_push_is_rejected_and_changes_nothing(tmp_path: Path) -> None:
    work, bare, url = setup_repos(tmp_path)
    remote = LOCAL.check(url)
    push_branch(work.workdir, "feature", remote, None)
    # someone else pushes to the branch
    other = pygit2.clone_repository(url, str(tmp_path / "other"), checkout_branch="feature")
    theirs = commit(other, "refs/heads/feature", "theirs.txt", "x", [other.head.target])
    other.remotes["origin"].push(["refs/heads/feature:refs/heads/feature"])
    assert bare.references["refs/heads/feature"].target == theirs
    # meanwhile ours moves on in another direction
    commit(work, "refs/heads/feature", "ours.txt", "y", [work.references["refs/heads/feature"].target])
    with pytest.raises(PushRejected) as err:
        push_branch(work.workdir, "feature", remote, None)
    assert "non-fast-forward" in err.value.message and "feature" in err.value.message
    assert bare.references["refs/heads/feature"].target == theirs


def test_a_url_rewrite_in_the_repository_config_is_refused(tmp_path: Path) -> None:
    work, bare, url = setup_repos(tmp_path)
    evil = pygit2.init_repository(str(tmp_path / "evil.git"), bare=True)
    work.config[f"url.file://{evil.path}.insteadOf"] = url
    with pytest.raises(ServiceError, match="rewrites the remote URL"):
        push_branch(work.workdir, "feature", LOCAL.check(url), None)
    assert list(evil.references) == [] and list(bare.references) == []


def test_a_rewritten_branch_is_force_pushed_with_a_lease(tmp_path: Path) -> None:
    work, bare, url = setup_repos(tmp_path)
    remote = LOCAL.check(url)
    push_branch(work.workdir, "feature", remote, None)
    # a rebase here rewrites the branch: the remote still holds exactly what we pushed, so it may go
    main = work.references["refs/heads/main"].target
    newer_main = commit(work, "refs/heads/main", "m.txt", "m", [main])
    rebased = commit(work, None, "b.txt", "b", [newer_main])  # type: ignore[arg-type]
    work.references["refs/heads/feature"].set_target(rebased)
    push_branch(work.workdir, "feature", remote, None)
    assert bare.references["refs/heads/feature"].target == rebased


def test_the_remote_url_policy_refuses_what_an_attacker_would_send() -> None:
    policy = RemotePolicy("https://github.com")
    ok = policy.check("https://github.com/octo/widget.git")
    assert (ok.url, ok.owner, ok.name, ok.local) == (
        "https://github.com/octo/widget.git",
        "octo",
        "widget",
        False,
    )
    assert policy.check("https://github.com/octo/widget").url == "https://github.com/octo/widget.git"
    assert policy.check("git@github.com:octo/widget.git").url == "https://github.com/octo/widget.git"
    assert policy.check("ssh://git@github.com/octo/widget.git").url == "https://github.com/octo/widget.git"
    for bad in (
        "file:///etc/passwd",
        "file:///tmp/octo/widget.git",
        "/tmp/octo/widget.git",
        "../octo/widget",
        "http://github.com/octo/widget.git",
        "https://github.com.evil.example/octo/widget.git",
        "https://evil.example/octo/widget.git",
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1/octo/widget.git",
        "https://user:pw@github.com/octo/widget.git",
        "https://x-access-token@github.com/octo/widget.git",
        "https://github.com:8443/octo/widget.git",
        "https://github.com/octo/widget.git?x=1",
        "https://github.com/octo/../../etc",
        "https://github.com/octo/widget/extra",
        "ssh://git@evil.example/octo/widget.git",
        "git@evil.example:octo/widget.git",
        "ext::sh -c touch% /tmp/pwned",
        "https://github.com/octo/wid\nget",
        "",
    ):
        with pytest.raises(ServiceError):
            policy.check(bad)
    # the credentials of a refused URL are never echoed back
    with pytest.raises(ServiceError) as err:
        policy.check("https://me:s3cret@evil.example/o/r.git")
    assert "s3cret" not in err.value.message


def test_clone_success_and_a_failed_clone_leaves_no_folder(tmp_path: Path) -> None:
    work, bare, url = setup_repos(tmp_path)
    push_branch(work.workdir, "feature", LOCAL.check(url), None)
    bare.references.create("HEAD", "refs/heads/feature", force=True)
    workspace = tmp_path / "workspace"
    clone(LOCAL.check(url), str(workspace / "widget"), None)
    assert (workspace / "widget" / "b.txt").read_text() == "b"
    assert sorted(os.listdir(workspace)) == ["widget"]
    with pytest.raises(ServiceError, match="already exists"):
        clone(LOCAL.check(url), str(workspace / "widget"), None)
    with pytest.raises(ServiceError, match="Cloning octo/missing failed"):
        clone(LOCAL.check(f"file://{tmp_path}/remotes/octo/missing.git"), str(workspace / "missing"), None)
    assert sorted(os.listdir(workspace)) == ["widget"]  # no half-cloned folder, no scratch folder


def test_from_github_clones_into_the_workspace_and_refuses_local_paths(tmp_path: Path) -> None:
    work, bare, url = setup_repos(tmp_path)
    push_branch(work.workdir, "feature", LOCAL.check(url), None)
    bare.references.create("HEAD", "refs/heads/feature", force=True)
    with github_standin() as standin:
        body = {"repository_id": 7, "name": "widget", "clone_url": url, "setup_script": "make"}
        # the API cannot make the server read a local repository when the setting is off
        with live_server(make_config(tmp_path / "strict", github=github_settings(standin))) as live:
            for clone_url in (url, "https://127.0.0.1/octo/widget.git", "ssh://git@10.0.0.1/o/r.git"):
                response = live.post("/api/projects/from-github", json={**body, "clone_url": clone_url})
                assert response.json()["success"] is False and "not allowed" in response.json()["message"]
            assert live.ok("GET", "/api/projects") == []
            workspace = Path(live.services.config.paths.workspace_dir)
            assert not workspace.exists() or os.listdir(workspace) == []
        config = make_config(tmp_path / "tests", github=github_settings(standin, allow_local_remotes=True))
        with live_server(config) as live:
            project = live.ok("POST", "/api/projects/from-github", json=body)
            workspace = os.path.realpath(live.services.config.paths.workspace_dir)
            assert project["git_repo_path"] == os.path.join(workspace, "widget")
            assert project["setup_script"] == "make" and project["name"] == "widget"
            assert (Path(project["git_repo_path"]) / "b.txt").read_text() == "b"
            again = live.post("/api/projects/from-github", json=body).json()
            assert again["success"] is False and "already exists" in again["message"]
            failed = live.post(
                "/api/projects/from-github",
                json={**body, "name": "nope", "clone_url": f"file://{tmp_path}/remotes/octo/none.git"},
            ).json()
            assert failed["success"] is False and "Cloning octo/none failed" in failed["message"]
            assert sorted(os.listdir(workspace)) == ["widget"]
            bad = live.post("/api/projects/from-github", json={**body, "name": "../x"}).json()
            assert bad["success"] is False
            assert live.post("/api/projects/from-github", json={"name": "x"}).status_code in (400, 422)
            assert len(live.ok("GET", "/api/projects")) == 1
        assert not standin.seen(TOKEN)


def test_a_push_never_runs_a_process_with_the_token(tmp_path: Path) -> None:
    """libgit2 pushes in-process: no child process exists during a push, let alone one with the token."""
    work, _bare, url = setup_repos(tmp_path)
    remote = LOCAL.check(url)
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        me = os.getpid()
        while not done.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) != me:
                        continue
                    seen.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
                except (OSError, ValueError, IndexError):
                    continue
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for n in range(20):
            tip = work.references["refs/heads/feature"].target
            commit(work, "refs/heads/feature", f"f{n}.txt", str(n), [tip])
            push_branch(work.workdir, "feature", remote, TOKEN)
    finally:
        done.set()
        watcher.join()
    assert not any(TOKEN in cmd for cmd in seen), seen


def test_the_token_travels_only_in_the_authorization_header_and_a_refusal_stops(tmp_path: Path) -> None:
    """Over https/http the token is given to libgit2 in a credentials callback: GitHub gets it as basic
    auth, never in a URL; when GitHub refuses it, the push stops with a clear error instead of looping."""
    import base64

    work, _bare, _url = setup_repos(tmp_path)
    with github_standin() as standin:
        remote = RemotePolicy(standin.url).check(f"{standin.url}/octo/widget.git")
        with pytest.raises(ServiceError, match="refused the token"):
            push_branch(work.workdir, "feature", remote, TOKEN)
        with pytest.raises(ServiceError, match="needs a token"):
            push_branch(work.workdir, "feature", remote, None)
        basic = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
        auths = [r.headers.get("Authorization") for r in standin.state.requests]
        assert basic in auths and auths.count(basic) == 1
        assert not standin.seen(TOKEN)
        assert all(TOKEN not in r.path for r in standin.state.requests)
