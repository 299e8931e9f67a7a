"""The Swarm runner on a real two-node swarm (two dockerds of the test's own on this machine).

An attempt constrained to the worker node runs there (checked with the worker's own engine, not the
manager's), hardened and without a network, streams its log through the API, commits onto its branch,
is stopped and torn down. Then the worker's dockerd is stopped while an agent runs: the attempt ends
failed with a message naming the node, and nothing of it is left — not on the manager, not on the worker
once it is back. A logout reaches the container on the worker at once. The client certificate of the
worker's engine is rotated while the server runs; warm containers keep to a per-node quota.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest
from websockets.sync.client import connect

from anyon.checks import check_docker
from anyon.config.model import AnyonConfig
from anyon.harness.swarm import ROLE_LABEL, TwoNodeSwarm, issue_client, make_ca, prerequisites
from anyon.services.composition.agents import agent_home_for
from anyon.services.composition.runners import instance_id
from anyon.services.logs import jsonpatch as jp
from anyon.services.runners.base import RunnerError
from anyon.services.runners.swarm import SwarmRunner
from tests.conftest import IN_CI, make_config
from tests.live_server import LiveServer, live_server
from tests.test_executions_cloud import (
    IMAGE,
    SHELL_AGENT,
    _project_with_agent,
    hardened_docker,
    require_test_image,
)
from tests.test_executions_local import branch_files, start, use_fake_agent, wait_processes

pytestmark = pytest.mark.docker

#: an agent that reports where it runs (interfaces, no_new_privs), edits the worktree, then waits when told
PROBE_AGENT = r"""#!/bin/sh
prompt=$(cat)
echo '{"type":"system","subtype":"init","session_id":"sess-swarm"}'
ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ',')
nnp=$(grep NoNewPrivs /proc/self/status | tr -d ' \t')
login=$(cat "$HOME/.probe-login" 2>/dev/null || echo none)
say() { printf '{"type":"assistant","message":{"content":[{"type":"text","text":"%s"}]}}\n' "$1"; }
say "ifaces=$ifaces $nnp login=$login"
printf '%s\n' "$prompt" > agent.txt
case "$prompt" in *linger*) say lingering; sleep 600;; esac
echo '{"type":"result","subtype":"success","is_error":false,"result":"done"}'
"""


@pytest.fixture(scope="module")
def swarm() -> Iterator[TwoNodeSwarm]:
    require_test_image()
    missing = prerequisites()
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true but a private swarm cannot be started: {missing}")
        pytest.skip(f"a private two-node swarm cannot be started: {missing}")
    cluster = TwoNodeSwarm(IMAGE)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def swarm_config(swarm: TwoNodeSwarm, tmp_path: Path) -> AnyonConfig:
    return make_config(
        tmp_path,
        mode="cloud",
        docker=hardened_docker(
            host=swarm.manager.url,
            runner="swarm",
            swarm_constraints=(f"node.labels.{ROLE_LABEL}==worker",),
            swarm_task_timeout_seconds=30.0,
            swarm_tls_dir=swarm.tls_dir,  # the worker's engine is reached over TCP with TLS
            cpus=0.5,
        ),
        executions={"stop_escalation_seconds": 0.5},
    )


@pytest.fixture
def server(swarm: TwoNodeSwarm, tmp_path: Path) -> Iterator[LiveServer]:
    config = swarm_config(swarm, tmp_path)
    instance = instance_id(config)
    try:
        with live_server(config) as live:
            use_fake_agent(live, SHELL_AGENT)
            live.instance = instance  # type: ignore[attr-defined]
            yield live
    finally:
        for service in swarm.services(instance):
            swarm.manager.api.remove_service(service["ID"])


def _project(server: LiveServer, tmp_path: Path) -> dict[str, Any]:
    project = _project_with_agent(server, tmp_path)
    repo = pygit2.Repository(project["git_repo_path"])
    Path(project["git_repo_path"], ".agent.sh").write_text(PROBE_AGENT)
    repo.index.add(".agent.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "probe agent", repo.index.write_tree(), [repo.head.target])
    return project


def _logs(server: LiveServer, process_id: str) -> str:
    return "".join(c.content for c in server.services.logstore.read(process_id))


def _raw_log(server: LiveServer, process_id: str, until: str, timeout: float = 60.0) -> str:
    """Follow the process's raw-log WebSocket until ``until`` appears in its stdout (or it finishes)."""
    doc: Any = {"entries": []}
    text = ""
    path = f"/api/execution-processes/{process_id}/raw-logs/ws"
    with connect(server.ws_url + path, open_timeout=10, max_size=None) as conn:
        deadline = time.monotonic() + timeout
        while until not in text and time.monotonic() < deadline:
            try:
                frame = json.loads(conn.recv(timeout=max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                break
            if frame == {"finished": True}:
                break
            doc = jp.apply_ops(doc, frame["JsonPatch"])
            text = "".join(e["content"] for e in doc["entries"] if e["type"] == "STDOUT")
    return text


def _wait(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def _start_lingering(server: LiveServer, project: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    task = server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "linger"})
    attempt = server.ok(
        "POST",
        "/api/task-attempts",
        json={
            "task_id": task["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        },
    )
    return task, attempt


def _running_agent(server: LiveServer, attempt_id: str) -> dict[str, Any]:
    """Wait for the attempt's agent to run and print (its log streams live through the API)."""
    agent: dict[str, Any] = _wait(
        "the agent to start",
        lambda: next(
            (
                p
                for p in server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt_id}")
                if p["run_reason"] == "codingagent"
            ),
            None,
        ),
        timeout=120,
    )
    assert "lingering" in _raw_log(server, agent["id"], until="lingering")
    assert server.ok("GET", f"/api/execution-processes/{agent['id']}")["status"] == "running"
    return agent


def test_attempt_runs_on_the_worker_node_and_is_torn_down(
    swarm: TwoNodeSwarm, server: LiveServer, tmp_path: Path
) -> None:
    instance = server.instance  # type: ignore[attr-defined]
    project = _project(server, tmp_path)
    agent_home = Path(agent_home_for(server.services.config))  # the agents' logins, signed in on the node
    agent_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (agent_home / ".probe-login").write_text("signed-in")
    task, attempt = start(server, project, "Edit on the worker")
    processes = wait_processes(server, attempt["id"], 3, timeout=120)
    assert [p["status"] for p in processes] == ["completed"] * 3, processes

    # it ran on the worker: the worker's own engine has the container, the manager's engine has none
    on_worker = swarm.worker.anyon_containers()
    assert [c["Labels"]["anyon.attempt"] for c in on_worker] == [attempt["id"]]
    assert swarm.manager.anyon_containers() == []
    [service] = swarm.services(instance)
    assert service["Spec"]["Labels"]["anyon.attempt"] == attempt["id"]
    inspect = swarm.worker.api.inspect_container(on_worker[0]["Id"])
    host = inspect["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"] and host["PidsLimit"] == 128
    assert host["Memory"] == 256 * 1024**2 and inspect["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    resources = service["Spec"]["TaskTemplate"]["Resources"]
    assert resources["Reservations"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * 1024**2}

    # the agent saw a loopback interface only, and no_new_privs set; its log came through the API
    agent_log = _raw_log(server, processes[1]["id"], until="done")
    assert "ifaces=lo, NoNewPrivs:1 login=signed-in" in agent_log, agent_log
    assert "setup-ran-as-" in _logs(server, processes[0]["id"])

    # the commit landed on the attempt's branch in the project repository (path identity held)
    files = branch_files(project["git_repo_path"], attempt["branch"])
    assert {"agent.txt", "setup.log", "cleanup.txt"} <= files

    # the metrics count it on the worker node
    metrics = server.get("/metrics").text
    hostname = swarm.manager.api.inspect_node(swarm.worker_id)["Description"]["Hostname"]
    worker = f'node="{hostname} ({swarm.worker_id[:12]})"'
    assert f'anyon_swarm_node_attempts_running{{deployment="cloud",{worker}}} 1.0' in metrics, metrics
    assert f'anyon_swarm_node_ready{{deployment="cloud",{worker},state="ready/active"}} 1.0' in metrics

    # a follow-up runs in the same container (no new placement)
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "again"})
    more = wait_processes(server, attempt["id"], 4, timeout=60)
    assert more[-1]["status"] == "completed", more
    assert [c["Id"] for c in swarm.worker.anyon_containers()] == [on_worker[0]["Id"]]

    # deleting the task removes the service, the container on the worker and the worktree
    worktree = server.ok("GET", f"/api/task-attempts/{attempt['id']}")["container_ref"]
    assert server.delete(f"/api/tasks/{task['id']}").status_code == 202
    _wait(
        "the teardown",
        lambda: (
            not swarm.services(instance)
            and not swarm.worker.anyon_containers()
            and not Path(worktree).exists()
        ),
        timeout=30,
    )


def test_worker_dying_mid_attempt_fails_it_and_leaks_nothing(
    swarm: TwoNodeSwarm, server: LiveServer, tmp_path: Path
) -> None:
    instance = server.instance  # type: ignore[attr-defined]
    project = _project(server, tmp_path)
    task, attempt = _start_lingering(server, project)
    agent = _running_agent(server, attempt["id"])
    assert [c["Labels"]["anyon.attempt"] for c in swarm.worker.anyon_containers()] == [attempt["id"]]

    swarm.worker.stop()  # the worker's dockerd goes away with the agent's container
    try:
        failed = _wait(
            "the agent to fail",
            lambda: (
                p
                if (p := server.ok("GET", f"/api/execution-processes/{agent['id']}"))["status"] == "failed"
                else None
            ),
            timeout=60,
        )
        assert failed["status"] == "failed"
        log_text = _logs(server, agent["id"])
        assert "worker node" in log_text and "the process was lost" in log_text, log_text
        # nothing left on the control plane: the service is gone at once, no process is running
        assert swarm.services(instance) == []
        processes = server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")
        assert all(p["status"] != "running" for p in processes), processes
    finally:
        swarm.worker.start()  # the node comes back
    swarm.wait_ready(swarm.worker_id)
    # ...and keeps nothing of the attempt (its swarm agent or the runner's reconcile removes the task)
    _wait("the worker to drop the dead task", lambda: not swarm.worker.anyon_containers(), timeout=60)

    # a follow-up places a new container on the worker and finishes
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "after"})
    _wait(
        "the follow-up",
        lambda: [
            p
            for p in wait_processes(server, attempt["id"], len(processes) + 1, timeout=90)
            if p["run_reason"] == "codingagent" and p["id"] != agent["id"]
        ],
        timeout=90,
    )
    after = wait_processes(server, attempt["id"], len(processes) + 1, timeout=90)
    [again] = [p for p in after if p["run_reason"] == "codingagent" and p["id"] != agent["id"]]
    assert again["status"] == "completed", (again, _logs(server, again["id"]))
    assert [c["Labels"]["anyon.attempt"] for c in swarm.worker.anyon_containers()] == [attempt["id"]]
    assert server.delete(f"/api/tasks/{task['id']}").status_code == 202
    _wait("the teardown", lambda: not swarm.services(instance) and not swarm.worker.anyon_containers())


def test_a_restarted_server_adopts_sweeps_and_removes_leftovers(swarm: TwoNodeSwarm, tmp_path: Path) -> None:
    from docker.types import ContainerSpec, Placement, TaskTemplate

    config = swarm_config(swarm, tmp_path)
    instance = instance_id(config)
    api = swarm.worker.api
    try:
        with live_server(config) as first:
            use_fake_agent(first, SHELL_AGENT)
            project = _project(first, tmp_path)
            task, attempt = start(first, project, "before the restart")
            wait_processes(first, attempt["id"], 3, timeout=120)
        [container] = swarm.worker.anyon_containers()
        # what a crash leaves: a process nobody supervises in the attempt's container...
        stray = api.exec_create(container["Id"], ["sleep", "1001"])
        api.exec_start(stray["Id"], detach=True)
        _wait("the stray", lambda: "sleep 1001" in str(api.top(container["Id"])))
        # ...a service and a bare container of this instance whose attempt is gone
        gone = {"anyon.managed": "1", "anyon.instance": instance, "anyon.attempt": str(uuid.uuid4())}
        spec = ContainerSpec(IMAGE, args=["sleep", "1002"], labels=gone)
        swarm.manager.api.create_service(
            TaskTemplate(spec, placement=Placement(constraints=[f"node.labels.{ROLE_LABEL}==worker"])),
            labels=gone,
        )
        bare = api.create_container(IMAGE, ["sleep", "1003"], labels=gone, network_disabled=True)
        api.start(bare["Id"])
        _wait(
            "the leftovers to run",
            lambda: len(swarm.services(instance)) == 2 and len(swarm.worker.anyon_containers()) >= 3,
        )

        with live_server(config) as second:
            # the live attempt's container is adopted and swept; everything of the gone attempt removed
            _wait(
                "the reconcile",
                lambda: (
                    [c["Id"] for c in swarm.worker.anyon_containers()] == [container["Id"]]
                    and [s["Spec"]["Labels"]["anyon.attempt"] for s in swarm.services(instance)]
                    == [attempt["id"]]
                ),
            )
            _wait("the sweep", lambda: "sleep 1001" not in str(api.top(container["Id"])))
            # the adopted container still serves the attempt
            second.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "adopted"})
            processes = wait_processes(second, attempt["id"], 5, timeout=60)
            assert [p["status"] for p in processes] == ["completed"] * 5, processes
            assert [c["Id"] for c in swarm.worker.anyon_containers()] == [container["Id"]]
            assert second.delete(f"/api/tasks/{task['id']}").status_code == 202
            _wait(
                "the teardown", lambda: not swarm.services(instance) and not swarm.worker.anyon_containers()
            )
    finally:
        for service in swarm.services(instance):
            swarm.manager.api.remove_service(service["ID"])
        for info in swarm.worker.anyon_containers():
            api.remove_container(info["Id"], force=True)


def test_doctor_checks_the_swarm(swarm: TwoNodeSwarm, tmp_path: Path) -> None:
    config = swarm_config(swarm, tmp_path)
    results = {r.name: r for r in check_docker(config, os.getuid())}
    assert results["swarm manager"].status == "ok", results
    nodes = [r for name, r in results.items() if name.startswith("swarm node ")]
    assert len(nodes) == 2 and all(r.status == "ok" for r in nodes), nodes
    try:
        swarm.label(swarm.worker_id, {"anyon.engine": "unix:///nonexistent/docker.sock"})
        results = {r.name: r for r in check_docker(config, os.getuid())}
        worker = next(r for n, r in results.items() if swarm.worker_id[:12] in n)
        assert worker.status == "warn" and "does not answer" in worker.message
        swarm.label(swarm.manager_id, {"anyon.engine": ""})
        results = {r.name: r for r in check_docker(config, os.getuid())}
        assert results["swarm nodes"].status == "fail"
        manager = next(r for n, r in results.items() if swarm.manager_id[:12] in n)
        assert manager.status == "fail" and "has no 'anyon.engine' label" in manager.message
    finally:
        swarm.label(swarm.worker_id, {"anyon.engine": swarm.worker_tcp})
        swarm.label(swarm.manager_id, {"anyon.engine": swarm.manager.url})
    # the worker's engine refuses a client without a certificate from its CA
    no_tls = dataclasses.replace(config, docker=dataclasses.replace(config.docker, swarm_tls_dir=None))
    results = {r.name: r for r in check_docker(no_tls, os.getuid())}
    worker = next(r for n, r in results.items() if swarm.worker_id[:12] in n)
    assert worker.status == "warn" and "does not answer" in worker.message, worker
    not_manager = swarm_config(swarm, tmp_path)
    not_manager = dataclasses.replace(
        not_manager, docker=dataclasses.replace(not_manager.docker, host=swarm.worker.url)
    )
    results = {r.name: r for r in check_docker(not_manager, os.getuid())}
    assert (
        results["swarm manager"].status == "fail"
        and "not a swarm manager" in results["swarm manager"].message
    )


def test_a_worker_cut_off_mid_attempt_is_given_up_once_the_swarm_reports_it_down(
    swarm: TwoNodeSwarm, server: LiveServer, tmp_path: Path
) -> None:
    """Its connections stay open and silent (as after a power loss): the manager's view decides."""
    instance = server.instance  # type: ignore[attr-defined]
    project = _project(server, tmp_path)
    task, attempt = _start_lingering(server, project)
    agent = _running_agent(server, attempt["id"])
    swarm.worker.pause()
    try:
        _wait(
            "the agent to fail",
            lambda: (
                p
                if (p := server.ok("GET", f"/api/execution-processes/{agent['id']}"))["status"] == "failed"
                else None
            ),
            timeout=90,
        )
        assert swarm.node_state(swarm.worker_id) == "down"
        log_text = _logs(server, agent["id"])
        assert "is down in the swarm" in log_text and "the process was lost" in log_text, log_text
        assert swarm.services(instance) == []
    finally:
        swarm.worker.resume()
    swarm.wait_ready(swarm.worker_id)
    _wait("the worker to drop the dead task", lambda: not swarm.worker.anyon_containers(), timeout=60)
    assert server.delete(f"/api/tasks/{task['id']}").status_code == 202


def test_draining_the_worker_fails_its_attempt_clearly_and_places_the_next_command_again(
    swarm: TwoNodeSwarm, server: LiveServer, tmp_path: Path
) -> None:
    """deploy/RUNBOOK.md, "Drain a node": Swarm stops the tasks there; nothing restarts behind our back."""
    instance = server.instance  # type: ignore[attr-defined]
    project = _project(server, tmp_path)
    task, attempt = _start_lingering(server, project)
    agent = _running_agent(server, attempt["id"])
    swarm.set_availability(swarm.worker_id, "drain")
    try:
        _wait(
            "the agent to fail",
            lambda: server.ok("GET", f"/api/execution-processes/{agent['id']}")["status"] == "failed",
        )
        log_text = _logs(server, agent["id"])
        assert "worker node" in log_text and "the process was lost" in log_text, log_text
        _wait(
            "the drained task to go",
            lambda: not swarm.services(instance) and not swarm.worker.anyon_containers(),
        )
    finally:
        swarm.set_availability(swarm.worker_id, "active")
    # the next command is placed again (on the worker, active once more) and runs
    server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "after the drain"})
    _wait(
        "the follow-up",
        lambda: any(
            p["run_reason"] == "codingagent" and p["id"] != agent["id"] and p["status"] == "completed"
            for p in server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")
        ),
    )
    _wait(
        "its cleanup script",
        lambda: all(
            p["status"] != "running"
            for p in server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt['id']}")
        ),
    )
    assert server.delete(f"/api/tasks/{task['id']}").status_code == 202
    _wait("the teardown", lambda: not swarm.services(instance) and not swarm.worker.anyon_containers())


def test_an_attempt_no_node_can_take_fails_with_swarms_reason_and_leaves_nothing(
    swarm: TwoNodeSwarm, tmp_path: Path
) -> None:
    config = swarm_config(swarm, tmp_path)
    docker = dataclasses.replace(
        config.docker,
        swarm_constraints=(f"node.labels.{ROLE_LABEL}==nowhere",),
        swarm_task_timeout_seconds=2.0,
    )
    config = dataclasses.replace(config, docker=docker)
    instance = instance_id(config)
    with live_server(config) as live:
        use_fake_agent(live, SHELL_AGENT)
        project = _project(live, tmp_path)
        task = live.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": "nowhere to run"})
        body = {
            "task_id": task["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        }
        attempt = live.ok("POST", "/api/task-attempts", json=body)
        [process] = wait_processes(live, attempt["id"], 1, timeout=60)
        assert process["status"] == "failed", process
        message = _logs(live, process["id"])
        assert "docker.swarm_task_timeout_seconds" in message and "no suitable node" in message, message
        assert swarm.services(instance) == []
        assert swarm.worker.anyon_containers() == [] and swarm.manager.anyon_containers() == []


def test_a_logout_reaches_a_container_on_the_worker_node(
    swarm: TwoNodeSwarm, server: LiveServer, tmp_path: Path
) -> None:
    """Signing the agents out removes the login from the HOME of a container running on another node
    at once, not only before its next process (the node's Engine makes the copy)."""
    instance = server.instance  # type: ignore[attr-defined]
    agent_home = Path(agent_home_for(server.services.config))
    (agent_home / ".claude").mkdir(mode=0o700, parents=True, exist_ok=True)
    (agent_home / ".claude" / ".credentials.json").write_text(
        '{"claudeAiOauth": {"accessToken": "tok-node"}}'
    )
    task, attempt = start(server, _project(server, tmp_path), "Sign out while placed on the worker")
    processes = wait_processes(server, attempt["id"], 3, timeout=120)
    assert [p["status"] for p in processes] == ["completed"] * 3, processes
    [container] = swarm.worker.anyon_containers()
    api = swarm.worker.api

    def signed_in() -> bool:
        created = api.exec_create(container["Id"], ["sh", "-c", 'cat "$HOME/.claude/.credentials.json"'])
        return b"tok-node" in api.exec_start(created["Id"])

    assert signed_in()
    assert server.ok("POST", "/api/auth/claude/logout") is None
    _wait("the logout to reach the worker's container", lambda: not signed_in(), timeout=3)
    assert server.delete(f"/api/tasks/{task['id']}").status_code == 202
    _wait("the teardown", lambda: not swarm.services(instance) and not swarm.worker.anyon_containers())


def test_a_rotated_client_certificate_is_used_without_a_restart(
    swarm: TwoNodeSwarm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The files of ``docker.swarm_tls_dir`` replaced in place: new connections to the worker's engine
    use them, with no restart; a half-written set (a certificate whose key is not there yet) leaves the
    working one in use with one warning; a certificate the node does not trust shows they really are used."""
    ca_root = Path(swarm.tls_dir).parent  # the harness's CA
    tls_dir = tmp_path / "tls"  # a copy of our own: the module's swarm keeps its files
    shutil.copytree(swarm.tls_dir, tls_dir)
    base = swarm_config(swarm, tmp_path)
    config = dataclasses.replace(base, docker=dataclasses.replace(base.docker, swarm_tls_dir=str(tls_dir)))
    instance = instance_id(config)

    def attempt_runs(live: LiveServer, title: str) -> None:
        task, attempt = start(live, project, title)
        processes = wait_processes(live, attempt["id"], 3, timeout=120)
        assert [p["status"] for p in processes] == ["completed"] * 3, processes
        assert [c["Labels"]["anyon.attempt"] for c in swarm.worker.anyon_containers()] == [attempt["id"]]
        assert live.delete(f"/api/tasks/{task['id']}").status_code == 202
        _wait("the teardown", lambda: not swarm.services(instance) and not swarm.worker.anyon_containers())

    def in_use() -> bytes:
        node = live.services.docker.swarm._nodes[swarm.worker_id].node  # type: ignore[attr-defined]
        node.api  # noqa: B018 - looks at the files, as every call does
        return Path(node._material.files[1]).read_bytes()

    try:
        with live_server(config) as live:
            use_fake_agent(live, SHELL_AGENT)
            project = _project(live, tmp_path)
            attempt_runs(live, "Before the rotation")
            first = (tls_dir / "cert.pem").read_bytes()
            assert in_use() == first

            # half-written: the new certificate is in place, its key not yet
            cert, key = issue_client(ca_root, f"rotated-{uuid.uuid4().hex[:8]}")
            (tls_dir / "cert.pem").write_bytes(cert.read_bytes())
            with caplog.at_level("WARNING", logger="anyon.services.runners.swarm_tls"):
                attempt_runs(live, "Half-written rotation")
            assert in_use() == first
            warnings = [r for r in caplog.records if r.name == "anyon.services.runners.swarm_tls"]
            assert len(warnings) == 1 and "cannot load the TLS files" in warnings[0].getMessage(), warnings

            # the key follows: the new pair is used for the next attempt, the server still running
            (tls_dir / "key.pem").write_bytes(key.read_bytes())
            attempt_runs(live, "After the rotation")
            assert in_use() == cert.read_bytes()

            # a pair from another CA: the worker's engine refuses it, so the files really are what is used
            rogue_ca = tmp_path / "rogue-ca"
            make_ca(rogue_ca)
            rogue_cert, rogue_key = issue_client(rogue_ca, "rogue")
            (tls_dir / "cert.pem").write_bytes(rogue_cert.read_bytes())
            (tls_dir / "key.pem").write_bytes(rogue_key.read_bytes())
            node = live.services.docker.swarm._nodes[swarm.worker_id].node  # type: ignore[attr-defined]
            with pytest.raises(Exception, match=r"(?i)ssl|certificate|connection"):
                node.api.ping()
            (tls_dir / "cert.pem").write_bytes(cert.read_bytes())
            (tls_dir / "key.pem").write_bytes(key.read_bytes())
            assert node.api.ping() is True
    finally:
        for service in swarm.services(instance):
            swarm.manager.api.remove_service(service["ID"])


def test_warm_containers_keep_to_the_per_node_quota(swarm: TwoNodeSwarm, tmp_path: Path) -> None:
    """With ``docker.warm_pool_per_node = 1`` on two nodes: two warm containers land one per node (with the
    attempts' constraints, here none); a third is refused at once; once an attempt claims one, its node
    takes the next warm container."""
    base = swarm_config(swarm, tmp_path)
    docker = dataclasses.replace(base.docker, swarm_constraints=(), warm_pool_per_node=1)
    instance = instance_id(base)
    runner = SwarmRunner(docker, instance, tmp_path / "secrets")
    objects = tmp_path / "objects"
    objects.mkdir()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    folders = {attempt_id: tmp_path / f"warm-{i}" for i, attempt_id in enumerate(ids)}
    for folder in folders.values():
        folder.mkdir()

    async def place(attempt_id: str) -> str:
        await runner.ensure_container(attempt_id, str(folders[attempt_id]), str(objects))
        return runner.swarm.placed[attempt_id].node_id

    async def scenario() -> None:
        try:
            runner.reserved_ids.update(ids)  # as the warm pool marks its containers
            first, second = await place(ids[0]), await place(ids[1])
            assert {first, second} == {swarm.manager_id, swarm.worker_id}
            with pytest.raises(RunnerError, match="warm_pool_per_node = 1"):
                await place(ids[2])
            assert len(swarm.services(instance)) == 2
            runner.reserved_ids.discard(ids[0])  # an attempt claimed it: no longer a warm container
            assert await place(ids[2]) == first
        finally:
            for attempt_id in ids:
                await runner.remove_container(attempt_id)
            await runner.close()

    try:
        asyncio.run(scenario())
    finally:
        for service in swarm.services(instance):
            swarm.manager.api.remove_service(service["ID"])
