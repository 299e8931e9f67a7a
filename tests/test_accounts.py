"""A team on one cloud server, through a real uvicorn: two accounts, private projects, revocation, audit.

User alice owns a private project with a task, an attempt that really ran in its container, processes,
logs and a draft. User bob (another account on the same server) must find none of it: every REST route,
WebSocket and SSE stream answers as if the ids did not exist (404, the same message as an unknown id),
and nothing he sends changes anything. Accounts are managed with the real ``anyon user`` command.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from anyon.cli import main
from anyon.config.model import AnyonConfig
from anyon.security.auth import SESSION_COOKIE
from anyon.services.composition.runners import instance_id
from tests.live_server import LiveServer, live_server
from tests.test_auth import CANARY, bearer, reachable_config
from tests.test_executions_cloud import (
    IMAGE,
    SHELL_AGENT,
    _project_with_agent,
    remove_instance_containers,
    require_test_image,
)
from tests.test_executions_local import start, use_fake_agent, wait_processes

pytestmark = pytest.mark.docker

PROFILE = {"executor": "CLAUDE_CODE"}


def _config(tmp_path: Path, visibility: str) -> AnyonConfig:
    config = reachable_config(tmp_path)
    return dataclasses.replace(
        config,
        deployment=dataclasses.replace(config.deployment, mode="cloud"),
        docker=dataclasses.replace(
            config.docker, image=IMAGE, user=f"{os.getuid()}:{os.getgid()}", network="none"
        ),
        auth=dataclasses.replace(config.auth, project_visibility=visibility, revocation_check_seconds=0.2),  # type: ignore[arg-type]
    )


def _settings_file(config: AnyonConfig, tmp_path: Path) -> str:
    """A settings file naming the server's data directory and database, for the ``anyon`` commands."""
    p = config.paths
    text = (
        '[deployment]\nmode = "cloud"\n[paths]\n'
        + "".join(
            f'{k} = "{getattr(p, k)}"\n'
            for k in ("base_dir", "data_dir", "worktree_dir", "workspace_dir", "temp_dir")
        )
        + f'secrets_dir = "{tmp_path}/cli-secrets"\n[database]\nfile = "{config.database.file}"\n'
    )
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return str(path)


def cli(server: LiveServer, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*args, "--settings", server.settings])  # type: ignore[attr-defined]
    return code, out.getvalue(), err.getvalue()


def add_user(server: LiveServer, login: str, *extra: str) -> tuple[str, str]:
    """Create an account with ``anyon user add``; returns (token secret, token id) printed once."""
    code, out, err = cli(server, "user", "add", login, *extra)
    assert code == 0, err
    token_id = re.search(r"token id ([0-9a-f-]{36})", out)
    assert token_id is not None, out
    return out.strip().splitlines()[-1], token_id.group(1)


def as_user(server: LiveServer, token: str) -> LiveServer:
    other = LiveServer(server.deployment, server.base_url)
    other.client.headers.update(bearer(token))
    return other


@contextmanager
def team_server(tmp_path: Path, visibility: str) -> Iterator[LiveServer]:
    require_test_image()
    config = _config(tmp_path, visibility)
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            server.settings = _settings_file(config, tmp_path)  # type: ignore[attr-defined]
            yield server
    finally:
        remove_instance_containers(instance)


@pytest.fixture
def private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    with team_server(tmp_path, "private") as server:
        yield server


def ws_status(server: LiveServer, path: str, token: str) -> int:
    """The HTTP status of a refused upgrade, or 101 when the stream opened."""
    try:
        with connect(server.ws_url + path, additional_headers=bearer(token), open_timeout=10):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


class SseReader(threading.Thread):
    """Reads ``/api/events`` in the background; ``ended`` is set when the server closes the stream."""

    def __init__(self, server: LiveServer, token: str) -> None:
        super().__init__(daemon=True)
        self.url = server.base_url + "/api/events"
        self.token = token
        self.text = ""
        self.status = 0
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.stop = False

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=bearer(self.token), timeout=30) as response:
                self.status = response.status_code
                self.opened.set()
                for chunk in response.iter_text():
                    self.text += chunk
                    if self.stop:
                        return
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()


# --- private projects ---------------------------------------------------------------------------


def test_another_users_private_project_does_not_exist_for_them(private: LiveServer, tmp_path: Path) -> None:
    a_token, _ = add_user(private, "alice")
    b_token, _ = add_user(private, "bob")
    alice, bob, admin = as_user(private, a_token), as_user(private, b_token), as_user(private, CANARY)
    use_fake_agent(alice, SHELL_AGENT)
    project = _project_with_agent(alice, tmp_path)
    task, attempt = start(alice, project, "Alice's private work")
    processes = wait_processes(alice, attempt["id"], 3, timeout=120)
    alice.ok(
        "PUT", f"/api/task-attempts/{attempt['id']}/draft?type=follow_up", json={"prompt": "alice draft"}
    )
    mine = bob.ok(
        "POST",
        "/api/projects",
        json={"name": "bobproj", "git_repo_path": str(tmp_path / "bobproj"), "use_existing_repo": False},
    )
    P, T, A, X = project["id"], task["id"], attempt["id"], processes[0]["id"]

    # lists: bob sees his project only; alice hers; the server's API token (admin) both
    assert [p["id"] for p in bob.ok("GET", "/api/projects")] == [mine["id"]]
    assert P in [p["id"] for p in alice.ok("GET", "/api/projects")]
    assert mine["id"] not in [p["id"] for p in alice.ok("GET", "/api/projects")]
    assert {P, mine["id"]} <= {p["id"] for p in admin.ok("GET", "/api/projects")}
    assert A not in [a["id"] for a in bob.ok("GET", "/api/task-attempts")]
    assert A in [a["id"] for a in admin.ok("GET", "/api/task-attempts")]

    # every route that names alice's objects: 404, the very answer an unknown id gets
    routes: list[tuple[str, str, Any]] = [
        ("GET", "/api/projects/{P}", None),
        ("PUT", "/api/projects/{P}", {"name": "pwned"}),
        ("DELETE", "/api/projects/{P}", None),
        ("GET", "/api/projects/{P}/branches", None),
        ("GET", "/api/tasks?project_id={P}", None),
        ("GET", "/api/tasks/{T}", None),
        ("PUT", "/api/tasks/{T}", {"title": "pwned"}),
        ("DELETE", "/api/tasks/{T}", None),
        ("GET", "/api/task-attempts?task_id={T}", None),
        ("GET", "/api/task-attempts/{A}", None),
        ("GET", "/api/task-attempts/{A}/branch-status", None),
        ("POST", "/api/task-attempts/{A}/merge", None),
        ("POST", "/api/task-attempts/{A}/stop", None),
        ("POST", "/api/task-attempts/{A}/follow-up", {"prompt": "pwned"}),
        ("GET", "/api/task-attempts/{A}/draft?type=follow_up", None),
        ("PUT", "/api/task-attempts/{A}/draft?type=follow_up", {"prompt": "pwned"}),
        ("GET", "/api/execution-processes?task_attempt_id={A}", None),
        ("GET", "/api/execution-processes/{X}", None),
        ("POST", "/api/execution-processes/{X}/stop", None),
        ("GET", "/api/images/task/{T}", None),
    ]
    uuid_text = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

    def same_as_unknown(
        method: str, real: str, unknown: str, body: Any = None, unknown_body: Any = None
    ) -> None:
        """Bob gets for alice's ids exactly what he gets for ids that exist nowhere."""
        got = bob.client.request(method, real, json=body)
        expected = bob.client.request(method, unknown, json=unknown_body)
        assert got.status_code == expected.status_code, (method, real, got.text, expected.text)
        assert uuid_text.sub("ID", got.text) == uuid_text.sub("ID", expected.text), (real, got.text)
        answer = got.json()
        assert got.status_code == 404 or answer["data"] == [] or answer["success"] is False, (real, got.text)
        assert "Alice" not in got.text and project["git_repo_path"] not in got.text

    for method, template, body in routes:
        real = template.format(P=P, T=T, A=A, X=X)
        unknown = template.format(P=uuid.uuid4(), T=uuid.uuid4(), A=uuid.uuid4(), X=uuid.uuid4())
        same_as_unknown(method, real, unknown, body, body)
    worktree = alice.ok("GET", f"/api/task-attempts/{A}")["container_ref"]
    hidden = bob.get(f"/api/containers/info?ref={quote(worktree, safe='')}")
    unknown_ref = bob.get(f"/api/containers/info?ref={quote(worktree + 'x', safe='')}")
    assert hidden.status_code == unknown_ref.status_code == 404
    assert hidden.json() == {
        **unknown_ref.json(),
        "message": unknown_ref.json()["message"].replace("x'", "'"),
    }
    assert alice.ok("GET", f"/api/containers/info?ref={quote(worktree, safe='')}")["attempt_id"] == A
    for status_path in (
        "/api/projects/{P}",
        "/api/tasks/{T}",
        "/api/task-attempts/{A}",
        "/api/execution-processes/{X}",
    ):
        got = bob.get(status_path.format(P=P, T=T, A=A, X=X))
        assert got.status_code == 404, got.text  # never 403

    # bodies that name alice's objects
    fresh = str(uuid.uuid4())
    for path, body in (
        ("/api/tasks", {"project_id": P, "title": "planted"}),
        ("/api/tasks", {"project_id": mine["id"], "title": "child", "parent_task_attempt": A}),
        ("/api/task-attempts", {"task_id": T, "executor_profile_id": PROFILE, "base_branch": "main"}),
        (
            "/api/tasks/create-and-start",
            {
                "task": {"project_id": P, "title": "planted"},
                "executor_profile_id": PROFILE,
                "base_branch": "main",
            },
        ),
    ):
        unknown_body = json.loads(json.dumps(body).replace(P, fresh).replace(T, fresh).replace(A, fresh))
        same_as_unknown("POST", path, path, body, unknown_body)

    # streams: the upgrade is refused with 404, as for an unknown id
    for path in (
        f"/api/tasks/stream/ws?project_id={P}",
        f"/api/drafts/stream/ws?project_id={P}",
        f"/api/execution-processes/stream/ws?task_attempt_id={A}",
        f"/api/execution-processes/{X}/raw-logs/ws",
        f"/api/execution-processes/{X}/normalized-logs/ws",
        f"/api/task-attempts/{A}/diff/ws",
    ):
        assert ws_status(private, path, b_token) == 404, path
        assert ws_status(private, path, a_token) == 101, path  # the owner's stream opens
    assert ws_status(private, f"/api/tasks/stream/ws?project_id={mine['id']}", b_token) == 101

    # nothing bob sent changed alice's data
    assert alice.ok("GET", f"/api/projects/{P}")["name"] == project["name"]
    assert alice.ok("GET", f"/api/tasks/{T}")["title"] == "Alice's private work"
    assert alice.ok("GET", f"/api/task-attempts/{A}/draft?type=follow_up")["prompt"] == "alice draft"
    assert [t["title"] for t in alice.ok("GET", f"/api/tasks?project_id={P}")] == ["Alice's private work"]
    assert bob.ok("GET", f"/api/tasks?project_id={mine['id']}") == []

    # the bus: bob's /api/events carries no event of alice's project; the admin's does
    readers = [SseReader(private, b_token), SseReader(private, CANARY)]
    for reader in readers:
        reader.start()
        assert reader.opened.wait(10) and reader.status == 200
    alice.ok("POST", "/api/tasks", json={"project_id": P, "title": "second-secret-title"})
    deadline = time.monotonic() + 10
    while "second-secret-title" not in readers[1].text and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    for reader in readers:
        reader.stop = True
    assert "second-secret-title" in readers[1].text
    assert "second-secret-title" not in readers[0].text

    # the owner merges; the audit trail says who, found by the attempt's id or its task's
    assert alice.ok("POST", f"/api/task-attempts/{A}/merge") is None
    for object_id in (A, T):
        code, out, err = cli(private, "audit", "--object", object_id, "--action", "merge", "--json")
        assert code == 0, err
        merges = [json.loads(line) for line in out.splitlines()]
        # bob's refused try is on record too, under the (attempt) id he sent
        expected = [("bob", "failed"), ("alice", "ok")] if object_id == A else [("alice", "ok")]
        assert [(m["user"], m["outcome"]) for m in merges] == expected, out
        assert merges[-1]["task_id"] == T and merges[-1]["project_id"] == P
    tried = [json.loads(x) for x in cli(private, "audit", "--user", "bob", "--json")[1].splitlines()]
    assert tried and all(e["outcome"] == "failed" for e in tried if e["action"] != "project.create")

    # a membership opens the project to bob
    code, _, err = cli(private, "user", "share", "bob", P)
    assert code == 0, err
    assert P in [p["id"] for p in bob.ok("GET", "/api/projects")]
    assert bob.ok("GET", f"/api/tasks/{T}")["title"] == "Alice's private work"
    assert ws_status(private, f"/api/execution-processes/{X}/raw-logs/ws", b_token) == 101


def test_team_visibility_shares_projects_and_owner_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    with team_server(tmp_path, "team") as server:
        a_token, _ = add_user(server, "alice")
        b_token, _ = add_user(server, "bob")
        alice, bob = as_user(server, a_token), as_user(server, b_token)
        project = alice.ok(
            "POST",
            "/api/projects",
            json={"name": "shared", "git_repo_path": str(tmp_path / "shared"), "use_existing_repo": False},
        )
        assert project["id"] in [p["id"] for p in bob.ok("GET", "/api/projects")]
        task = bob.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "by bob"})
        assert alice.ok("GET", f"/api/tasks/{task['id']}")["title"] == "by bob"
        from anyon.services.db.account_models import User
        from anyon.services.db.models import Project

        with server.services.database.connection():
            owner = Project.get_by_id(uuid.UUID(project["id"])).user_id
            assert owner == User.get(User.login == "alice").id


# --- revocation ----------------------------------------------------------------------------------


def test_revoking_a_token_closes_its_open_streams_and_refuses_it_at_once(
    private: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b_token, b_id = add_user(private, "bob")
    other, _ = add_user(private, "carol")
    bob = as_user(private, b_token)
    mine = bob.ok(
        "POST",
        "/api/projects",
        json={"name": "bobproj", "git_repo_path": str(tmp_path / "bobproj"), "use_existing_repo": False},
    )
    sse = SseReader(private, b_token)
    sse.start()
    assert sse.opened.wait(10) and sse.status == 200
    carol_sse = SseReader(private, other)
    carol_sse.start()
    assert carol_sse.opened.wait(10)
    path = f"/api/tasks/stream/ws?project_id={mine['id']}"
    with connect(private.ws_url + path, additional_headers=bearer(b_token), open_timeout=10) as ws:
        assert "JsonPatch" in json.loads(ws.recv(timeout=10))
        code, _, err = cli(private, "user", "token", "--revoke", b_id)
        assert code == 0, err
        assert bob.get("/api/projects").status_code == 401  # the next request, at once
        with pytest.raises(ConnectionClosed):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                ws.recv(timeout=deadline - time.monotonic())
        assert ws.close_code == 4401
    assert sse.ended.wait(10), "the revoked token's SSE stream stayed open"
    assert not carol_sse.ended.is_set()  # another account's stream is untouched
    assert cli(private, "user", "disable", "carol")[0] == 0  # disabling an account ends its streams too
    assert carol_sse.ended.wait(10), "the disabled user's SSE stream stayed open"
    # closing a stream mid-wait unwinds it cleanly: no "Exception in ASGI application"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_disabled_user_is_refused_at_once_bearer_and_session(private: LiveServer) -> None:
    token, _ = add_user(private, "bob")
    login = private.post("/api/auth/token", json={"token": token})
    assert login.status_code == 200, login.text
    cookie = login.cookies.get(SESSION_COOKIE)
    assert cookie and token not in cookie
    private.client.cookies.clear()
    form = private.post(
        "/api/auth/token",
        content=f"token={token}&next=/tasks",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 303 and form.headers["location"] == "/tasks"  # the unchanged login page
    private.client.cookies.clear()

    def with_cookie() -> int:
        return httpx.get(private.base_url + "/api/projects", cookies={SESSION_COOKIE: cookie}).status_code

    assert with_cookie() == 200
    assert private.get("/api/projects", headers=bearer(token)).status_code == 200
    assert cli(private, "user", "disable", "bob")[0] == 0
    assert with_cookie() == 401
    assert private.get("/api/projects", headers=bearer(token)).status_code == 401
    assert ws_status(private, "/api/tasks/stream/ws?project_id=" + str(uuid.uuid4()), token) == 401
    assert cli(private, "user", "enable", "bob")[0] == 0
    assert with_cookie() == 200
    # a forged session naming a real token id does not pass
    forged = ".".join([*cookie.split(".")[:3], "0" * 64])
    assert httpx.get(private.base_url + "/api/projects", cookies={SESSION_COOKIE: forged}).status_code == 401
    # the server's own API token keeps working as the admin identity
    assert private.get("/api/projects", headers=bearer(CANARY)).status_code == 200


def test_tokens_are_stored_hashed_and_listing_never_shows_them(private: LiveServer) -> None:
    token, token_id = add_user(private, "bob")
    code, out, _ = cli(private, "user", "token", "bob", "--list")
    assert code == 0 and token_id in out and token not in out
    code, out, _ = cli(private, "user", "list", "--json")
    assert [u["login"] for u in json.loads(out)] == ["bob"] and token not in out
    from anyon.services.db.account_models import UserToken

    with private.services.database.connection():
        stored = [row.secret_hash for row in UserToken.select()]
    assert stored and all(token not in value and len(value) == 64 for value in stored)
    assert cli(private, "user", "add", "bob")[0] == 1  # a duplicate login changes nothing
    assert cli(private, "user", "add", "../etc")[0] == 1


# --- audit ---------------------------------------------------------------------------------------


def test_audit_lines_name_the_user_and_anyon_audit_answers_who(private: LiveServer, tmp_path: Path) -> None:
    a_token, _ = add_user(private, "alice")
    b_token, _ = add_user(private, "bob")
    alice, bob = as_user(private, a_token), as_user(private, b_token)
    project = alice.ok(
        "POST",
        "/api/projects",
        json={"name": "audited", "git_repo_path": str(tmp_path / "audited"), "use_existing_repo": False},
    )
    task = alice.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "to delete"})
    assert bob.delete(f"/api/tasks/{task['id']}").status_code == 404  # refused: on record as failed
    assert alice.delete(f"/api/tasks/{task['id']}").status_code == 202

    code, out, err = cli(private, "audit", "--object", task["id"], "--json")
    assert code == 0, err
    entries = [json.loads(line) for line in out.splitlines()]
    assert [(e["user"], e["action"], e["outcome"]) for e in entries] == [
        ("alice", "task.create", "ok"),
        ("bob", "task.delete", "failed"),
        ("alice", "task.delete", "ok"),
    ]
    assert all(e["project_id"] == project["id"] for e in entries if e["user"] == "alice")
    assert "project_id" not in entries[1]  # nothing about the hidden object is looked up for bob
    code, out, _ = cli(private, "audit", "--action", "project.create")
    assert code == 0 and "alice" in out and "bob" not in out
    audit_dir = Path(private.deployment.config.paths.data_dir) / "audit"
    files = list(audit_dir.iterdir())
    assert files and all(f.stat().st_mode & 0o077 == 0 for f in files)
    assert a_token not in "".join(f.read_text() for f in files)


def test_accounts_do_not_exist_in_local_mode(tmp_path: Path) -> None:
    settings = tmp_path / "local.toml"
    settings.write_text(f'[deployment]\nmode = "local"\n[paths]\ndata_dir = "{tmp_path}/data"\n')
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        assert main(["user", "list", "--settings", str(settings)]) == 2
    assert "cloud mode only" in err.getvalue()


def test_ui_config_and_github_token_are_per_account(private: LiveServer, tmp_path: Path) -> None:
    a_token, _ = add_user(private, "alice")
    b_token, _ = add_user(private, "bob")
    alice, bob, admin = as_user(private, a_token), as_user(private, b_token), as_user(private, CANARY)
    config = alice.ok("GET", "/api/info")["config"]
    config.update(theme="DARK", git_branch_prefix="alice")
    config["github"] = {**config["github"], "pat": "ghp_alice_secret_value"}
    saved = alice.ok("PUT", "/api/config", json=config)
    assert saved["theme"] == "DARK" and saved["github"]["pat"] is None  # the token is never echoed
    alice_info, bob_info = alice.ok("GET", "/api/info"), bob.ok("GET", "/api/info")
    assert alice_info["config"]["theme"] == "DARK" and alice_info["github_secret_state"]["has_pat"] is True
    assert bob_info["config"]["theme"] != "DARK" and bob_info["config"]["git_branch_prefix"] == "vk"
    assert bob_info["github_secret_state"]["has_pat"] is False
    assert admin.ok("GET", "/api/info")["github_secret_state"]["has_pat"] is False  # the shared store
    data_dir = Path(private.deployment.config.paths.data_dir)
    stores = list((data_dir / "users").glob("*/secrets.json"))
    assert len(stores) == 1 and "ghp_alice_secret_value" in stores[0].read_text()
    assert stores[0].stat().st_mode & 0o077 == 0 and stores[0].parent.stat().st_mode & 0o077 == 0
    assert (
        "ghp_alice_secret_value" not in (data_dir / "config.json").read_text()
        if (data_dir / "config.json").exists()
        else True
    )


# --- quotas --------------------------------------------------------------------------------------


def test_user_slots_keep_one_account_from_taking_every_slot() -> None:
    from anyon.services.executions.user_slots import UserSlots

    async def scenario() -> list[str]:
        current = {"who": "alice"}
        slots = UserSlots(3, 1, who=lambda: current["who"])
        order: list[str] = []

        async def run(name: str, user: str, hold: float) -> None:
            current["who"] = user
            await slots.acquire(lambda position: order.append(f"{name} waits"))
            order.append(f"{name} runs")
            await asyncio.sleep(hold)
            slots.release()

        tasks = []
        for name, user in (("a1", "alice"), ("a2", "alice"), ("b1", "bob")):
            tasks.append(asyncio.create_task(run(name, user, 0.2)))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert slots.running == 2 and slots.queued == 1
        await asyncio.gather(*tasks)
        assert slots.running == 0 and slots.queued == 0
        return order

    assert asyncio.run(scenario()) == ["a1 runs", "a2 waits", "b1 runs", "a2 runs"]


def test_per_account_quota_holds_through_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    require_test_image()
    config = _config(tmp_path, "private")
    config = dataclasses.replace(
        config, executions=dataclasses.replace(config.executions, max_concurrent=4, max_concurrent_per_user=1)
    )
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            server.settings = _settings_file(config, tmp_path)  # type: ignore[attr-defined]
            a_token, _ = add_user(server, "alice")
            b_token, _ = add_user(server, "bob")
            alice, bob = as_user(server, a_token), as_user(server, b_token)
            use_fake_agent(alice, SHELL_AGENT)
            projects = []
            for who, name in ((alice, "quota-a"), (bob, "quota-b")):
                projects.append(
                    who.ok(
                        "POST",
                        "/api/projects",
                        json={
                            "name": name,
                            "git_repo_path": str(tmp_path / name),
                            "use_existing_repo": False,
                            "setup_script": "sleep 4",
                        },
                    )
                )
            start(alice, projects[0], "first")
            start(alice, projects[0], "second")
            start(bob, projects[1], "bob's")
            deadline = time.monotonic() + 60
            seen = None
            while time.monotonic() < deadline:
                seen = alice.ok("GET", "/api/executions/status")
                if seen["running"] == 2 and seen["queued"] == 1:
                    break
                time.sleep(0.1)
            assert seen == {**seen, "running": 2, "queued": 1}, seen
    finally:
        remove_instance_containers(instance)


# --- execution isolation between accounts ----------------------------------------------------------

PROBE_AGENT = r"""#!/bin/sh
# reads the prompt, tries to read every absolute path named in it, and writes what it could into probe.txt
prompt=$(cat)
: > probe.txt
for p in $prompt; do
  case "$p" in /*)
    if ls "$p" >/dev/null 2>&1 || cat "$p" >/dev/null 2>&1; then echo "READ $p" >> probe.txt
    else echo "DENIED $p" >> probe.txt; fi ;;
  esac
done
echo '{"type":"result","subtype":"success","is_error":false,"result":"probed"}'
"""


def test_one_accounts_agent_cannot_reach_anothers_worktree_or_credentials(
    private: LiveServer, tmp_path: Path
) -> None:
    a_token, _ = add_user(private, "alice")
    b_token, _ = add_user(private, "bob")
    alice, bob = as_user(private, a_token), as_user(private, b_token)
    use_fake_agent(alice, SHELL_AGENT)
    # bob signs in to GitHub (his token in his own store) and runs an attempt that leaves files behind
    config = bob.ok("GET", "/api/info")["config"]
    config["github"] = {**config["github"], "pat": "ghp_bob_secret_value"}
    bob.ok("PUT", "/api/config", json=config)
    bob_project = _project_with_agent(bob, tmp_path / "b")
    _, bob_attempt = start(bob, bob_project, "Bob's work", "bob prompt")
    wait_processes(bob, bob_attempt["id"], 3, timeout=120)
    bob_worktree = bob.ok("GET", f"/api/task-attempts/{bob_attempt['id']}")["container_ref"]
    assert (Path(bob_worktree) / "agent.txt").exists()  # bob's agent really wrote there
    config_paths = private.deployment.config.paths
    secrets_root = config_paths.secrets_dir or os.path.join(config_paths.temp_dir, "cloud-secrets")
    data_dir = Path(config_paths.data_dir)
    targets = [
        f"{bob_worktree}/agent.txt",
        bob_worktree,
        os.path.join(secrets_root, bob_attempt["id"]),
        str(next((data_dir / "users").glob("*/secrets.json"))),
        bob_project["git_repo_path"],
        str(data_dir / "accounts.key"),
    ]

    # alice's agent, in her own container, tries to read each of them
    project = _project_with_agent(alice, tmp_path / "a")
    repo_path = Path(project["git_repo_path"])
    (repo_path / ".agent.sh").write_text(PROBE_AGENT)
    import pygit2

    repo = pygit2.Repository(str(repo_path))
    repo.index.add(".agent.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "probe", repo.index.write_tree(), [repo.head.target])
    # (the prompt reaches the agent JSON-encoded: words around the paths keep them whole)
    _, attempt = start(alice, project, "Probe", "paths: " + " ".join([*targets, "/etc/passwd"]) + " end")
    wait_processes(alice, attempt["id"], 3, timeout=120)
    probe = (
        Path(alice.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]) / "probe.txt"
    ).read_text()
    # the probe works (it reads its own container's files) and finds nothing of bob's
    assert probe.splitlines() == [*(f"DENIED {t}" for t in targets), "READ /etc/passwd"], probe


def test_prompt_tags_are_per_account_in_private_mode(private: LiveServer) -> None:
    a_token, _ = add_user(private, "alice")
    b_token, _ = add_user(private, "bob")
    alice, bob, admin = as_user(private, a_token), as_user(private, b_token), as_user(private, CANARY)
    shared = admin.ok("POST", "/api/tags", json={"tag_name": "team_snippet", "content": "for everyone"})
    secret = alice.ok("POST", "/api/tags", json={"tag_name": "alice_snippet", "content": "alice only"})
    assert {t["id"] for t in alice.ok("GET", "/api/tags")} == {shared["id"], secret["id"]}
    assert [t["id"] for t in bob.ok("GET", "/api/tags")] == [shared["id"]]
    unknown = str(uuid.uuid4())
    for method, body in (("GET", None), ("PUT", {"content": "pwned"}), ("DELETE", None)):
        got = bob.client.request(method, f"/api/tags/{secret['id']}", json=body)
        expected = bob.client.request(method, f"/api/tags/{unknown}", json=body)
        assert got.status_code == expected.status_code == 404, got.text
        assert got.text.replace(secret["id"], unknown) == expected.text
    assert alice.ok("GET", f"/api/tags/{secret['id']}")["content"] == "alice only"


def test_guessing_user_tokens_is_limited_like_the_api_token(private: LiveServer) -> None:
    token, _ = add_user(private, "bob")
    statuses = [
        private.get("/api/projects", headers=bearer("anyon_u_" + "A" * 43)).status_code for _ in range(12)
    ]
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429, statuses
    # while the address is locked out, even the right token gets 429: a guesser learns nothing
    assert private.get("/api/projects", headers=bearer(token)).status_code == 429


def test_drafts_belong_to_the_account_that_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Team mode: alice and bob work on the same attempt, each with a composer of their own."""
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    with team_server(tmp_path, "team") as server:
        a_token, _ = add_user(server, "alice")
        b_token, _ = add_user(server, "bob")
        alice, bob = as_user(server, a_token), as_user(server, b_token)
        use_fake_agent(alice, SHELL_AGENT)
        project = _project_with_agent(alice, tmp_path)
        _, attempt = start(alice, project, "Shared work")
        wait_processes(alice, attempt["id"], 3, timeout=120)
        draft = f"/api/task-attempts/{attempt['id']}/draft?type=follow_up"
        stream = f"/api/drafts/stream/ws?project_id={project['id']}"
        with connect(server.ws_url + stream, additional_headers=bearer(b_token), open_timeout=10) as bob_ws:
            first = json.loads(bob_ws.recv(timeout=10))
            alice.ok("PUT", draft, json={"prompt": "alice's thought"})
            bob.ok("PUT", draft, json={"prompt": "bob's thought"})
            frames = [first]
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    frames.append(json.loads(bob_ws.recv(timeout=deadline - time.monotonic())))
                except TimeoutError:
                    break
        text = json.dumps(frames)
        assert "bob's thought" in text and "alice's thought" not in text
        assert alice.ok("GET", draft)["prompt"] == "alice's thought"
        assert bob.ok("GET", draft)["prompt"] == "bob's thought"
        # alice's queued follow-up is sent (the attempt is idle) and clears her draft only
        alice.ok("POST", draft.replace("/draft?", "/draft/queue?"), json={"queued": True})
        wait_processes(alice, attempt["id"], 5, timeout=120)
        deadline = time.monotonic() + 30
        while alice.ok("GET", draft)["prompt"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alice.ok("GET", draft)["prompt"] == ""
        assert bob.ok("GET", draft)["prompt"] == "bob's thought"


def test_the_same_image_uploaded_by_two_accounts_is_each_ones_own(private: LiveServer) -> None:
    """Uploads are stored once per content, but the row is per account: bob's copy is not alice's image."""
    from tests.test_images import png

    a_token, _ = add_user(private, "alice")
    b_token, _ = add_user(private, "bob")
    alice, bob = as_user(private, a_token), as_user(private, b_token)
    data = png(7)

    def upload(who: LiveServer) -> dict[str, Any]:
        body = who.post("/api/images/upload", files={"image": ("same.png", data, "image/png")}).json()
        assert body["success"] is True, body
        return dict(body["data"])

    mine, theirs = upload(alice), upload(bob)
    assert mine["id"] != theirs["id"] and mine["hash"] == theirs["hash"]  # the content hash, as before
    assert bob.client.get(f"/api/images/{mine['id']}/file").status_code == 404  # alice's, unattached
    assert bob.client.get(f"/api/images/{theirs['id']}/file").content == data
    assert bob.client.delete(f"/api/images/{theirs['id']}").status_code == 200
    assert alice.client.get(f"/api/images/{mine['id']}/file").content == data  # the shared file stays


def test_an_etag_is_of_what_the_account_receives(private: LiveServer, tmp_path: Path) -> None:
    """A list's ETag is computed after the account's filtering: sharing a project with bob changes his."""
    a_token, _ = add_user(private, "alice")
    b_token, _ = add_user(private, "bob")
    alice, bob = as_user(private, a_token), as_user(private, b_token)
    project = alice.ok(
        "POST",
        "/api/projects",
        json={"name": "etag", "git_repo_path": str(tmp_path / "etag"), "use_existing_repo": False},
    )
    first = bob.client.get("/api/projects")
    assert first.json()["data"] == [] and first.headers["etag"]
    again = bob.client.get("/api/projects", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert alice.client.get("/api/projects").headers["etag"] != first.headers["etag"]
    code, _, err = cli(private, "user", "share", "bob", project["id"])
    assert code == 0, err
    after = bob.client.get("/api/projects", headers={"If-None-Match": first.headers["etag"]})
    assert after.status_code == 200 and [p["id"] for p in after.json()["data"]] == [project["id"]]
