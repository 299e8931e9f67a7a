"""Cloud mode end to end, as a browser on another machine would use it: every call carries the API token
(the server is configured for a non-loopback address), the agent edits files inside its container, its
logs stream over WebSocket, the diff shows the change, the merge lands, and deleting the task removes the
container and the worktree."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from anyon.services.composition.runners import instance_id
from anyon.services.logs import jsonpatch as jp
from tests.live_server import LiveServer, live_server
from tests.test_auth import CANARY, bearer, reachable_config
from tests.test_executions_cloud import (
    IMAGE,
    SHELL_AGENT,
    _containers,
    _project_with_agent,
    remove_instance_containers,
    require_test_image,
)
from tests.test_executions_local import start, use_fake_agent, wait_processes, wait_task_status

pytestmark = pytest.mark.docker


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.delenv("ANYON_API_TOKEN", raising=False)
    require_test_image()
    config = reachable_config(tmp_path)
    config = dataclasses.replace(
        config,
        deployment=dataclasses.replace(config.deployment, mode="cloud"),
        docker=dataclasses.replace(
            config.docker, image=IMAGE, user=f"{os.getuid()}:{os.getgid()}", network="none"
        ),
    )
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            server.client.headers.update(bearer())
            use_fake_agent(server, SHELL_AGENT)
            server.instance = instance  # type: ignore[attr-defined]
            yield server
    finally:
        remove_instance_containers(instance)


def _stream(server: LiveServer, path: str, timeout: float = 60.0) -> Any:
    """Read a log/diff stream to ``finished`` (or until ``timeout``) and return the patched document."""
    doc: Any = {"entries": []} if "logs" in path else {"entries": {}}
    with connect(server.ws_url + path, additional_headers=bearer(), open_timeout=10, max_size=None) as conn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = json.loads(conn.recv(timeout=2 if "diff" in path else deadline - time.monotonic()))
            except TimeoutError:
                break
            if frame == {"finished": True}:
                break
            doc = jp.apply_ops(doc, frame["JsonPatch"])
    return doc


def test_token_protected_cloud_round_trip(cloud: LiveServer, tmp_path: Path) -> None:
    anonymous = cloud.client.get("/api/projects", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and CANARY not in anonymous.text
    project = _project_with_agent(cloud, tmp_path)
    task, attempt = start(cloud, project, "Cloud round trip")
    processes = wait_processes(cloud, attempt["id"], 3, timeout=120)
    assert [p["status"] for p in processes] == ["completed"] * 3
    wait_task_status(cloud, task["id"], "inreview")

    agent = processes[1]
    conversation = _stream(cloud, f"/api/execution-processes/{agent['id']}/normalized-logs/ws")
    texts = [e["content"]["content"] for e in conversation["entries"] if e["type"] == "NORMALIZED_ENTRY"]
    assert "Done in container" in texts
    raw = _stream(cloud, f"/api/execution-processes/{processes[0]['id']}/raw-logs/ws")
    assert raw["entries"] == [{"type": "STDOUT", "content": f"setup-ran-as-{os.getuid()}\n"}]

    diff = _stream(cloud, f"/api/task-attempts/{attempt['id']}/diff/ws")
    changed = {v["content"]["newPath"] for v in diff["entries"].values()}
    assert {"agent.txt", "whoami.txt"} <= changed

    assert cloud.ok("POST", f"/api/task-attempts/{attempt['id']}/merge") is None
    assert cloud.ok("GET", f"/api/tasks/{task['id']}")["status"] == "done"
    assert (Path(project["git_repo_path"]) / "agent.txt").exists() or _merged_has(project, "agent.txt")

    worktree = cloud.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    assert len(_containers(cloud.instance)) == 1  # type: ignore[attr-defined]
    assert cloud.delete(f"/api/tasks/{task['id']}").status_code == 202
    deadline = time.monotonic() + 30
    while _containers(cloud.instance) or Path(worktree).exists():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "container or worktree left behind"
        time.sleep(0.1)


def _merged_has(project: dict[str, Any], name: str) -> bool:
    import pygit2

    repo = pygit2.Repository(project["git_repo_path"])
    return name in {e.name for e in repo.lookup_branch("main").peel(pygit2.Commit).tree}
