"""Branch status fetches what it reports on from the remote: through the live server, against the stand-in
GitHub serving a real bare repository over git's smart HTTP with the token as basic auth.

Another clone pushes to the remote; the counts follow. Fetches are throttled per repository and remote
(the clock is moved here instead of waiting a minute), shared by concurrent requests, bounded in time, and
a remote that is down, hangs or is not allowed only means the answer comes from the local refs. The token
is never in a log line, an answer, a URL or a request body.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pygit2
import pytest

from anyon.services.composition.runners import instance_id
from anyon.services.git.remote_tips import fetched_ref, remote_tip_ahead_behind
from anyon.services.github import refresh
from anyon.services.github.remotes import RemotePolicy
from anyon.services.github.transport import push_branch
from tests.conftest import make_config
from tests.github.standin import TOKEN, StandIn, github_standin
from tests.live_server import LiveServer, live_server
from tests.test_executions_cloud import (
    SHELL_AGENT,
    _api,
    _project_with_agent,
    hardened_docker,
    remove_instance_containers,
    require_test_image,
)
from tests.test_executions_local import make_project, start, use_fake_agent, wait_processes
from tests.test_github_api import github_settings
from tests.test_github_prs import Recorder, save_token

SIG = pygit2.Signature("Other", "other@example.com")


def fetches(standin: StandIn) -> int:
    """Fetches that reached the stand-in (each starts unauthenticated, gets 401, and asks again)."""
    return sum(
        1
        for r in standin.state.requests
        if r.path.endswith("info/refs?service=git-upload-pack") and "Authorization" not in r.headers
    )


def commit_on(repo: pygit2.Repository, branch: str, name: str) -> pygit2.Oid:
    ref = f"refs/heads/{branch}"
    parent = repo.references[ref].target
    builder = repo.TreeBuilder(repo[parent].peel(pygit2.Commit).tree)
    builder.insert(name, repo.create_blob(name.encode()), pygit2.GIT_FILEMODE_BLOB)
    return repo.create_commit(ref, SIG, SIG, f"add {name}", builder.write(), [parent])


class Clock:
    """The refresh's clock, moved forward by hand so a test need not wait out the throttle."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(refresh, "_clock", moved)
    return moved


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandIn]:
    with github_standin() as gh:
        gh.state.git_root = tmp_path / "remotes"
        yield gh


def project_on(live: LiveServer, tmp_path: Path, origin: str) -> tuple[dict[str, Any], pygit2.Repository]:
    project = make_project(live, tmp_path)
    return project, on_remote(project, tmp_path, origin)


def on_remote(project: dict[str, Any], tmp_path: Path, origin: str) -> pygit2.Repository:
    """The project's main on a bare remote, as if cloned from it: ``origin`` set, ``origin/main`` known."""
    repo = pygit2.Repository(project["git_repo_path"])
    bare_path = tmp_path / "remotes" / "octo" / "widget.git"
    bare = pygit2.init_repository(str(bare_path), bare=True)
    repo.remotes.create("seed", f"file://{bare_path}").push(["refs/heads/main:refs/heads/main"])
    repo.remotes.delete("seed")
    repo.references.create("refs/remotes/origin/main", repo.references["refs/heads/main"].target)
    repo.remotes.create("origin", origin)
    return bare


def other_clone(tmp_path: Path, branch: str = "main") -> pygit2.Repository:
    bare = tmp_path / "remotes" / "octo" / "widget.git"
    return pygit2.clone_repository(
        f"file://{bare}", str(tmp_path / f"other-{branch.replace('/', '-')}"), checkout_branch=branch
    )


def push_other(other: pygit2.Repository, branch: str, name: str) -> None:
    commit_on(other, branch, name)
    other.remotes["origin"].push([f"refs/heads/{branch}:refs/heads/{branch}"])


def test_the_target_and_the_pushed_branch_follow_the_remote(
    tmp_path: Path, standin: StandIn, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = make_config(tmp_path, github=github_settings(standin, pr_monitor_interval_seconds=0.0))
    with live_server(config) as live:
        use_fake_agent(live)
        api = Recorder(live)
        project, bare = project_on(live, tmp_path, f"{standin.url}/octo/widget.git")
        save_token(api, TOKEN)
        _task, attempt = start(api, project, "Follow the remote", base="origin/main")
        assert attempt["target_branch"] == "origin/main"
        wait_processes(live, attempt["id"], 1)
        status_url = f"/api/task-attempts/{attempt['id']}/branch-status"

        other = other_clone(tmp_path)
        push_other(other, "main", "one.txt")
        status = api.ok("GET", status_url)  # the first look fetches
        assert status["commits_behind"] == 1 and fetches(standin) == 1
        repo = pygit2.Repository(project["git_repo_path"])
        assert repo.references["refs/remotes/origin/main"].target == bare.references["refs/heads/main"].target

        push_other(other, "main", "two.txt")
        again = api.ok("GET", status_url)  # within the minute: the same refs, no request to GitHub
        assert again["commits_behind"] == 1 and fetches(standin) == 1

        clock.offset += refresh.FETCH_INTERVAL + 1
        with ThreadPoolExecutor(6) as pool:  # requests that arrive together share one fetch
            answers = list(pool.map(lambda _: api.ok("GET", status_url), range(6)))
        assert [a["commits_behind"] for a in answers] == [2] * 6 and fetches(standin) == 2

        # an open PR: its branch is pushed over https with the token, then someone adds to it on GitHub
        branch = attempt["branch"]
        api.ok("POST", f"/api/task-attempts/{attempt['id']}/pr", json={"title": "Follow"})
        lease = repo.references[f"refs/remotes/origin/{branch}"].target
        assert bare.references[f"refs/heads/{branch}"].target == lease
        status = api.ok("GET", status_url)
        assert (status["remote_commits_ahead"], status["remote_commits_behind"]) == (0, 0)
        theirs = other_clone(tmp_path, branch)
        push_other(theirs, branch, "review.txt")
        clock.offset += refresh.FETCH_INTERVAL + 1
        status = api.ok("GET", status_url)
        assert (status["remote_commits_ahead"], status["remote_commits_behind"]) == (0, 1)
        # the fetch never moved the push's lease: a force-push still cannot overwrite their commit
        assert repo.references[f"refs/remotes/origin/{branch}"].target == lease

        assert not standin.seen(TOKEN)
        assert all(TOKEN not in r.path for r in standin.state.requests)
        assert not [b for b in api.bodies if TOKEN in b]
    assert TOKEN not in caplog.text


def test_the_pushed_copy_counts_against_the_newer_of_the_lease_and_the_fetch(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "r"), initial_head="main")
    first = repo.create_commit("refs/heads/b", SIG, SIG, "1", repo.TreeBuilder().write(), [])
    assert remote_tip_ahead_behind(repo.workdir, "b") is None  # never pushed nor fetched
    repo.references.create("refs/remotes/origin/b", first)  # pushed
    second = commit_on(repo, "b", "two.txt")
    repo.references.create(fetched_ref("origin", "b"), first)  # fetched before the next push
    assert remote_tip_ahead_behind(repo.workdir, "b") == (1, 0)
    repo.references.create("refs/remotes/origin/b", second, force=True)  # pushed after the fetch
    assert remote_tip_ahead_behind(repo.workdir, "b") == (0, 0)
    repo.references.create("refs/heads/theirs", second)
    theirs = commit_on(repo, "theirs", "theirs.txt")
    repo.references.create(fetched_ref("origin", "b"), theirs, force=True)  # someone added to it
    assert remote_tip_ahead_behind(repo.workdir, "b") == (0, 1)


def test_a_push_over_smart_http_lists_the_heads_then_pushes_on_a_new_connection(
    tmp_path: Path, standin: StandIn
) -> None:
    """libgit2 refuses to push over the fetch connection that listed the remote's heads."""
    bare = pygit2.init_repository(str(tmp_path / "remotes" / "octo" / "widget.git"), bare=True)
    work = pygit2.init_repository(str(tmp_path / "work"), initial_head="main")
    work.create_commit("refs/heads/feature", SIG, SIG, "1", work.TreeBuilder().write(), [])
    remote = RemotePolicy(standin.url).check(f"{standin.url}/octo/widget.git")
    assert push_branch(work.workdir, "feature", remote, TOKEN) == str(
        bare.references["refs/heads/feature"].target
    )
    tip = commit_on(work, "feature", "two.txt")
    assert push_branch(work.workdir, "feature", remote, TOKEN) == str(tip)
    assert bare.references["refs/heads/feature"].target == tip and not standin.seen(TOKEN)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_remote_that_is_down_or_not_allowed_answers_from_local_refs(
    tmp_path: Path, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    settings = {**github_settings(standin), "web_url": down, "api_url": down}
    with live_server(make_config(tmp_path, github=settings)) as live:
        use_fake_agent(live)
        api = Recorder(live)
        project, _bare = project_on(live, tmp_path, f"{down}/octo/widget.git")
        save_token(api, TOKEN)
        _task, attempt = start(api, project, "Offline", base="origin/main")
        wait_processes(live, attempt["id"], 1)
        push_other(other_clone(tmp_path), "main", "one.txt")
        status_url = f"/api/task-attempts/{attempt['id']}/branch-status"
        caplog.clear()
        started = time.monotonic()
        status = api.ok("GET", status_url)
        assert time.monotonic() - started < 3.0
        assert status["commits_behind"] == 0  # the local origin/main, as it was
        warnings = [r for r in caplog.records if r.name == refresh.__name__ and r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "local refs" in warnings[0].getMessage()
        api.ok("GET", status_url)  # throttled: no second attempt, no second warning
        assert len([r for r in caplog.records if r.name == refresh.__name__]) == 1

        # remotes the token may not go to are simply not fetched: no request, no warning, no error
        repo = pygit2.Repository(project["git_repo_path"])
        for url in (
            "https://evil.example/octo/widget.git",
            f"file://{tmp_path}/remotes/octo/widget.git",
            f"{standin.url}/octo/widget.git",
        ):
            repo.remotes.set_url("origin", url)
            caplog.clear()
            assert api.ok("GET", status_url)["commits_behind"] == 0
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert fetches(standin) == 0 and not [b for b in api.bodies if TOKEN in b]
    assert TOKEN not in caplog.text


def test_a_remote_that_hangs_is_waited_for_only_a_few_seconds(
    tmp_path: Path, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as hung:  # accepts connections (the backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        settings = {**github_settings(standin), "web_url": url, "api_url": url}
        with live_server(make_config(tmp_path, github=settings)) as live:
            use_fake_agent(live)
            api = Recorder(live)
            project, _bare = project_on(live, tmp_path, f"{url}/octo/widget.git")
            save_token(api, TOKEN)
            _task, attempt = start(api, project, "Hung", base="origin/main")
            wait_processes(live, attempt["id"], 1)
            status_url = f"/api/task-attempts/{attempt['id']}/branch-status"
            started = time.monotonic()
            assert api.ok("GET", status_url)["commits_behind"] == 0
            took = time.monotonic() - started
            assert refresh.FETCH_TIMEOUT - 0.5 < took < refresh.FETCH_TIMEOUT + 3.0
            started = time.monotonic()  # the fetch still hangs: later requests do not wait for it again
            assert api.ok("GET", status_url)["commits_behind"] == 0
            assert time.monotonic() - started < 2.0
            assert "did not finish within" in caplog.text and TOKEN not in caplog.text


@pytest.mark.docker
def test_in_cloud_mode_the_server_fetches_and_the_container_gets_nothing(
    tmp_path: Path, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    require_test_image()
    caplog.set_level(logging.INFO)
    config = make_config(
        tmp_path,
        mode="cloud",
        docker=hardened_docker(cpus=1.0),
        executions={"stop_escalation_seconds": 0.5},
        github=github_settings(standin),
    )
    instance = instance_id(config)
    try:
        with live_server(config) as live:
            use_fake_agent(live, SHELL_AGENT)
            api = Recorder(live)
            project = _project_with_agent(live, tmp_path)
            bare = on_remote(project, tmp_path, f"{standin.url}/octo/widget.git")
            save_token(api, TOKEN)
            _task, attempt = start(api, project, "Cloud follows", base="origin/main")
            wait_processes(live, attempt["id"], 3, timeout=120)
            push_other(other_clone(tmp_path), "main", "one.txt")
            status = api.ok("GET", f"/api/task-attempts/{attempt['id']}/branch-status")
            assert status["commits_behind"] == 1 and fetches(standin) == 1
            repo = pygit2.Repository(project["git_repo_path"])  # the fetch went into the host's repository
            assert (
                repo.references["refs/remotes/origin/main"].target
                == bare.references["refs/heads/main"].target
            )

            # the attempt's container: no token, and its own repository got no remote ref
            docker = _api()
            name = live.services.docker.container_name(attempt["id"])
            assert TOKEN not in str(docker.inspect_container(name)["Config"]["Env"])
            run = docker.exec_create(
                name, ["git", "-C", attempt["container_ref"], "for-each-ref", "--format=%(refname)"]
            )
            refs = docker.exec_start(run).decode().split()
            assert refs and all(r.startswith(("refs/heads/", "refs/tags/")) for r in refs), refs
            assert not [b for b in api.bodies if TOKEN in b] and not standin.seen(TOKEN)
    finally:
        remove_instance_containers(instance)
    assert TOKEN not in caplog.text
