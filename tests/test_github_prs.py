"""The whole pull-request flow through the HTTP API, local and cloud mode: push the attempt branch to a
real bare repository, open the PR on a stand-in GitHub, attach it, and let the monitor close the task
when the stand-in reports the PR merged. The token never shows up in answers, logs or containers."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from anyon.services.composition.runners import instance_id
from anyon.services.github.monitor import MAX_BACKOFF
from tests.conftest import make_config
from tests.github.standin import TOKEN, StandIn, github_standin
from tests.live_server import LiveServer, live_server
from tests.test_executions_cloud import (
    _api,
    _project_with_agent,
    hardened_docker,
    remove_instance_containers,
    require_test_image,
)
from tests.test_executions_local import make_project, start, use_fake_agent, wait_processes
from tests.test_github_api import github_settings


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with github_standin() as gh:
        yield gh


def settings(standin: StandIn) -> dict[str, Any]:
    return github_settings(standin, allow_local_remotes=True, pr_monitor_interval_seconds=0.2)


@pytest.fixture
def local(tmp_path: Path, standin: StandIn) -> Iterator[LiveServer]:
    config = make_config(tmp_path, executions={"stop_escalation_seconds": 0.5}, github=settings(standin))
    with live_server(config) as live:
        use_fake_agent(live)
        yield live


@pytest.fixture
def cloud(tmp_path: Path, standin: StandIn) -> Iterator[LiveServer]:
    require_test_image()
    config = make_config(
        tmp_path,
        mode="cloud",
        docker=hardened_docker(
            cpus=1.0,
        ),
        executions={"stop_escalation_seconds": 0.5},
        github=settings(standin),
    )
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            from tests.test_executions_cloud import SHELL_AGENT

            use_fake_agent(server, SHELL_AGENT)
            server.instance = instance  # type: ignore[attr-defined]
            yield server
    finally:
        remove_instance_containers(instance)


class Recorder:
    """Every answer the tests got, to check the token is in none of them."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.bodies: list[str] = []

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        response = self.server.client.request(method, path, **kw)
        self.bodies.append(response.text)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True, body
        return body["data"]

    def fail(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        response = self.server.client.request(method, path, **kw)
        self.bodies.append(response.text)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is False, body
        return body  # type: ignore[no-any-return]


def add_origin(project: dict[str, Any], tmp_path: Path) -> pygit2.Repository:
    bare = pygit2.init_repository(str(tmp_path / "remotes" / "octo" / "widget.git"), bare=True)
    repo = pygit2.Repository(project["git_repo_path"])
    repo.remotes.create("origin", f"file://{bare.path.rstrip('/')}")
    return bare


def save_token(api: Recorder, token: str) -> None:
    config = api.ok("GET", "/api/info")["config"]
    config["github"]["pat"] = token
    api.ok("PUT", "/api/config", json=config)


def wait(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pr_flow(
    server: LiveServer, standin: StandIn, project: dict[str, Any], tmp_path: Path, processes: int = 1
) -> dict[str, Any]:
    """Push, open, re-open (422), attach, merge on the stand-in; returns the attempt."""
    api = Recorder(server)
    bare = add_origin(project, tmp_path)
    task, attempt = start(api, project, "Add agent file", "Please add it")
    wait_processes(server, attempt["id"], processes, timeout=120)
    aid = attempt["id"]
    repo = pygit2.Repository(project["git_repo_path"])

    assert (
        api.fail("POST", f"/api/task-attempts/{aid}/pr", json={"title": "x"})["error_data"] == "TOKEN_INVALID"
    )
    save_token(api, TOKEN)
    assert api.ok("POST", f"/api/task-attempts/{aid}/push") is None
    branch = attempt["branch"]
    assert bare.references[f"refs/heads/{branch}"].target == repo.references[f"refs/heads/{branch}"].target
    assert "agent.txt" in {e.name for e in bare.revparse_single(f"refs/heads/{branch}").peel(pygit2.Tree)}

    url = api.ok("POST", f"/api/task-attempts/{aid}/pr", json={"title": "Add agent file", "body": "Body"})
    assert url == f"{standin.url}/octo/widget/pull/1"
    pr = standin.state.pulls[1]
    assert (pr["head"]["ref"], pr["base"]["ref"], pr["title"]) == (branch, "main", "Add agent file")
    assert pr["_body"] == "Body"
    # asked again: GitHub answers 422 (exists); the open PR is adopted, not duplicated
    assert api.ok("POST", f"/api/task-attempts/{aid}/pr", json={"title": "Again"}) == url
    assert len(standin.state.pulls) == 1
    attached = api.ok("POST", f"/api/task-attempts/{aid}/pr/attach")
    assert attached == {"pr_attached": True, "pr_url": url, "pr_number": 1, "pr_status": "open"}
    merges = api.ok("GET", f"/api/task-attempts/{aid}/branch-status")["merges"]
    assert len(merges) == 1 and merges[0]["type"] == "pr"
    assert merges[0]["pr_info"] == {
        "number": 1,
        "url": url,
        "status": "open",
        "merged_at": None,
        "merge_commit_sha": None,
    }
    assert api.ok("GET", f"/api/tasks/{task['id']}")["status"] == "inreview"
    status = api.ok("GET", f"/api/task-attempts/{aid}/branch-status")
    assert (status["remote_commits_ahead"], status["remote_commits_behind"]) == (0, 0)
    renamed = api.fail("POST", f"/api/task-attempts/{aid}/rename-branch", json={"new_branch_name": "other"})
    assert "pull request is open" in renamed["message"]

    # the monitor polls with If-None-Match: unchanged PRs come back 304
    wait(lambda: standin.state.pull_304 >= 2, "conditional polls")
    standin.merge(1)
    wait(lambda: api.ok("GET", f"/api/tasks/{task['id']}")["status"] == "done", "the task to be done")
    merged = api.ok("GET", f"/api/task-attempts/{aid}/branch-status")["merges"][0]["pr_info"]
    assert merged["status"] == "merged" and merged["merge_commit_sha"] == "c0ffee" * 6
    assert merged["merged_at"].startswith("2026-01-02T03:04:05")
    polls = standin.state.pull_200 + standin.state.pull_304
    time.sleep(0.6)  # a merged PR is no longer polled
    assert standin.state.pull_200 + standin.state.pull_304 == polls

    # the token: only ever in the Authorization header, in no answer
    assert not standin.seen(TOKEN)
    assert all(r.headers.get("Authorization") in (None, f"Bearer {TOKEN}") for r in standin.state.requests)
    assert not [b for b in api.bodies if TOKEN in b]
    return attempt


def test_the_pr_flow_in_local_mode(
    local: LiveServer, standin: StandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    project = make_project(local, tmp_path)
    pr_flow(local, standin, project, tmp_path)
    assert "pushed vk/" in caplog.text and TOKEN not in caplog.text


def test_pr_errors_are_typed(local: LiveServer, standin: StandIn, tmp_path: Path) -> None:
    api = Recorder(local)
    project = make_project(local, tmp_path)
    task, attempt = start(api, project, "Errors")
    wait_processes(local, attempt["id"], 1)
    aid = attempt["id"]
    assert "no 'origin' remote" in api.fail("POST", f"/api/task-attempts/{aid}/push")["message"]
    add_origin(project, tmp_path)
    save_token(api, "revoked-token")
    body = api.fail("POST", f"/api/task-attempts/{aid}/pr", json={"title": "t"})
    assert body["error_data"] == "TOKEN_INVALID" and body["message"] is None
    save_token(api, TOKEN)
    standin.state.known_repos = set()
    body = api.fail("POST", f"/api/task-attempts/{aid}/pr", json={"title": "t"})
    assert body["error_data"] == "REPO_NOT_FOUND_OR_NO_ACCESS"
    standin.state.known_repos = {"octo/widget"}
    assert (
        "title must not be empty"
        in api.fail("POST", f"/api/task-attempts/{aid}/pr", json={"title": "  "})["message"]
    )
    assert local.post(f"/api/task-attempts/{aid}/pr", json={"title": 3}).status_code == 422
    none = api.ok("POST", f"/api/task-attempts/{aid}/pr/attach")
    assert none == {"pr_attached": False, "pr_url": None, "pr_number": None, "pr_status": None}
    # attach by URL: only a PR of the project's own repository on the configured host
    pr = standin.add_pull("octo", "widget", attempt["branch"], "main", "made on GitHub")
    assert (
        "another repository"
        in api.fail(
            "POST", f"/api/task-attempts/{aid}/pr/attach", json={"pr_url": f"{standin.url}/octo/other/pull/1"}
        )["message"]
    )
    assert (
        "not a pull request URL"
        in api.fail(
            "POST",
            f"/api/task-attempts/{aid}/pr/attach",
            json={"pr_url": "https://evil.example/octo/widget/pull/1"},
        )["message"]
    )
    assert (
        "not found"
        in api.fail("POST", f"/api/task-attempts/{aid}/pr/attach", json={"pr_number": 99})["message"]
    )
    standin.merge(pr["number"])
    attached = api.ok("POST", f"/api/task-attempts/{aid}/pr/attach", json={"pr_url": pr["html_url"]})
    assert attached["pr_status"] == "merged" and attached["pr_number"] == pr["number"]
    assert api.ok("GET", f"/api/tasks/{task['id']}")["status"] == "done"
    assert local.post(f"/api/task-attempts/{'0' * 8}-0000-0000-0000-{'0' * 12}/push").status_code == 404


def test_the_monitor_backs_off_on_errors_and_rate_limits(tmp_path: Path, standin: StandIn) -> None:
    config = make_config(tmp_path, github=github_settings(standin, allow_local_remotes=True))
    with live_server(config) as live:
        use_fake_agent(live)
        api = Recorder(live)
        project = make_project(live, tmp_path)
        task, attempt = start(api, project, "Monitor", "Watch it")
        wait_processes(live, attempt["id"], 1)
        add_origin(project, tmp_path)
        save_token(api, TOKEN)
        api.ok("POST", f"/api/task-attempts/{attempt['id']}/pr", json={"title": "m"})
        assert standin.state.pulls[1]["_body"] == "Watch it"  # no body given: the task's description
        monitor = live.services.github.monitor
        monitor._interval = 10.0  # the loop is off (interval 0); passes are run by hand here
        result = monitor.poll_once()
        assert (result.checked, result.merged, result.failed) == (1, 0, False)
        assert monitor.poll_once().unchanged == 1  # ETag: 304
        standin.state.rate_limited = "429"
        limited = monitor.poll_once()
        assert limited.wait == 7.0 and monitor.next_wait(limited, 10.0)[0] == 10.0
        standin.state.rate_limited = "403"
        limited = monitor.poll_once()
        assert limited.wait is not None and monitor.next_wait(limited, 10.0)[0] > 25
        standin.state.rate_limited = None
        standin.state.token = "rotated"
        failed = monitor.poll_once()
        assert failed.failed
        waits = [monitor.next_wait(failed, b)[0] for b in (10.0, 20.0, 40.0, MAX_BACKOFF)]
        assert waits == [20.0, 40.0, 80.0, MAX_BACKOFF]
        standin.state.token = TOKEN
        standin.state.delay = 3.0  # beyond github.timeout_seconds
        assert monitor.poll_once().failed
        standin.state.delay = 0.0
        standin.merge(1)
        assert monitor.poll_once().merged == 1
        assert api.ok("GET", f"/api/tasks/{task['id']}")["status"] == "done"
        assert monitor.poll_once().checked == 0  # nothing open any more


@pytest.mark.docker
def test_the_pr_flow_in_cloud_mode(cloud: LiveServer, standin: StandIn, tmp_path: Path) -> None:
    project = _project_with_agent(cloud, tmp_path)
    attempt = pr_flow(cloud, standin, project, tmp_path, processes=3)
    # the token never went into the attempt's container or its secrets directory
    container = _api().inspect_container(cloud.services.docker.container_name(attempt["id"]))
    assert TOKEN not in str(container["Config"]["Env"])
    secrets_root = Path(cloud.services.config.paths.temp_dir)
    for path in secrets_root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
