"""GitHub calls of a cloud server with accounts use the right account's token, through a real uvicorn,
real dockerd and a stand-in GitHub that records which token each request carried.

Alice and bob each saved their own personal access token; carol saved none, and ops provided one for the
server. Opening a pull request uses the acting account's token (carol: the ops token), and the PR monitor
polls each pull request with the token of the account that opened it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from anyon.services.composition.runners import instance_id
from tests.github.standin import StandIn, github_standin
from tests.live_server import LiveServer, live_server
from tests.test_accounts import _config, _settings_file, add_user, as_user
from tests.test_auth import CANARY
from tests.test_executions_cloud import (
    SHELL_AGENT,
    _project_with_agent,
    remove_instance_containers,
    require_test_image,
)
from tests.test_executions_local import start, use_fake_agent, wait_processes
from tests.test_github_api import github_settings
from tests.test_github_prs import add_origin

pytestmark = pytest.mark.docker

ALICE = "ghp_alice_token_0123456789abcdef"
BOB = "ghp_bob_token_0123456789abcdef01"
OPS = "ghp_ops_token_0123456789abcdef012"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with github_standin() as gh:
        gh.state.tokens = {ALICE, BOB, OPS}
        yield gh


@pytest.fixture
def team(tmp_path: Path, standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    monkeypatch.setenv("ANYON_GITHUB_TOKEN", OPS)  # the ops-provided token (secret provider, last resort)
    require_test_image()
    config = _config(tmp_path, "private")
    settings = github_settings(standin, allow_local_remotes=True, pr_monitor_interval_seconds=0.2)
    config = dataclasses.replace(config, github=dataclasses.replace(config.github, **settings))
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            server.settings = _settings_file(config, tmp_path)  # type: ignore[attr-defined]
            yield server
    finally:
        remove_instance_containers(instance)


def _save_pat(who: LiveServer, pat: str) -> None:
    config = who.ok("GET", "/api/info")["config"]
    config["github"] = {**config["github"], "pat": pat}
    who.ok("PUT", "/api/config", json=config)


def _attempt_with_origin(who: LiveServer, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    project = _project_with_agent(who, tmp_path)
    add_origin(project, tmp_path)
    task, attempt = start(who, project, "Work", "work")
    wait_processes(who, attempt["id"], 3, timeout=120)
    return task, attempt


def _wait(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _auth_of(standin: StandIn, method: str, match: Callable[[Any], bool]) -> set[str | None]:
    return {
        r.headers.get("Authorization")
        for r in list(standin.state.requests)
        if r.method == method and match(r)
    }


def test_prs_are_opened_and_polled_with_the_opening_accounts_token(
    team: LiveServer, standin: StandIn, tmp_path: Path
) -> None:
    people = {}
    for login in ("alice", "bob", "carol"):
        token, _ = add_user(team, login)
        people[login] = as_user(team, token)
    use_fake_agent(as_user(team, CANARY), SHELL_AGENT)
    _save_pat(people["alice"], ALICE)
    _save_pat(people["bob"], BOB)

    expected = {"alice": ALICE, "bob": BOB, "carol": OPS}
    numbers, tasks = {}, {}
    for login, who in people.items():
        tasks[login], attempt = _attempt_with_origin(who, tmp_path / login)
        url = who.ok("POST", f"/api/task-attempts/{attempt['id']}/pr", json={"title": f"{login}'s"})
        numbers[login] = number = int(url.rsplit("/", 1)[1])
        branch = attempt["branch"]
        created = _auth_of(
            standin, "POST", lambda r, b=branch: r.path.endswith("/pulls") and json.loads(r.body)["head"] == b
        )
        assert created == {f"Bearer {expected[login]}"}, (login, created)
        assert standin.state.pulls[number]["title"] == f"{login}'s"

    for login, number in numbers.items():
        path = f"/repos/octo/widget/pulls/{number}"
        _wait(lambda p=path: bool(_auth_of(standin, "GET", lambda r: r.path == p)), f"{login}'s PR polled")
        polled = _auth_of(standin, "GET", lambda r, p=path: r.path == p)
        assert polled == {f"Bearer {expected[login]}"}, (login, polled)

    # a merged PR is seen through its opener's token and closes the task
    standin.merge(numbers["bob"])
    bob = people["bob"]
    task_id = tasks["bob"]["id"]
    _wait(lambda: bob.ok("GET", f"/api/tasks/{task_id}")["status"] == "done", "bob's task done")
    assert people["alice"].ok("GET", f"/api/tasks/{tasks['alice']['id']}")["status"] == "inreview"
    for token in (ALICE, BOB, OPS):  # tokens only ever in the Authorization header
        assert not standin.seen(token)
