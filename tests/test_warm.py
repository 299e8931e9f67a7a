"""Pre-started execs and warm pools against a real Docker Engine: they behave like a fresh exec, stop()
reaches them, and nothing of them keeps running once their attempt or project is gone."""

# ruff: noqa: F811 - the Docker fixtures are imported from test_docker_runner
from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from anyon.services.composition.runners import instance_id
from anyon.services.runners.prestart import command_line, sh_word
from tests.conftest import make_config
from tests.live_server import LiveServer, live_server
from tests.test_docker_runner import (  # noqa: F401 - fixtures
    IMAGE,
    attempt_repo,
    collect,
    docker_engine,
    make_runner,
)
from tests.test_executions_cloud import SHELL_AGENT, hardened_docker, remove_instance_containers
from tests.test_executions_local import branch_files, start, use_fake_agent, wait_processes, wait_task_status

pytestmark = pytest.mark.docker


def _api() -> Any:
    import docker

    return docker.APIClient(version="auto", timeout=30)


def _exec_running(exec_id: str) -> bool | None:
    """True/False for a known exec; None once Docker no longer knows it (its container is gone)."""
    import docker

    api = _api()
    try:
        return bool(api.exec_inspect(exec_id)["Running"])
    except docker.errors.NotFound:
        return None
    finally:
        api.close()


async def _waiting_launcher(runner: Any, attempt_id: str, timeout: float = 10.0) -> str:
    """The exec id of the attempt's pre-started launcher, once it waits and Docker reports it running."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = runner.prestarts.waiting.get(attempt_id)
        if waiting is not None and _exec_running(waiting.exec_id):
            return str(waiting.exec_id)
        assert time.monotonic() < deadline, f"no pre-started launcher for {attempt_id}"
        await asyncio.sleep(0.05)


def _containers(instance: str) -> list[dict[str, Any]]:
    api = _api()
    try:
        return list(api.containers(all=True, filters={"label": f"anyon.instance={instance}"}))
    finally:
        api.close()


def test_command_line_quotes_every_word_on_one_line() -> None:
    line = command_line(["printf", "%s|", "a'b", 'c"d $HOME', "x\ny"], "/w t", {"K": "v\nw"})
    assert line is not None and line.count(b"\n") == 1 and line.endswith(b"\n")
    assert sh_word("a\nb") == 'a"$anyon_nl"b'
    assert command_line(["true"], "/w", {"NOT-A-NAME": "1"}) is None  # the shell cannot export it
    assert command_line(["true"], "/w", {"K": "x" * 70_000}) is None  # too long for `read`


def test_prestarted_exec_behaves_like_a_fresh_one(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    warm = make_runner()
    fresh = make_runner(prestart_exec=False)
    sub = worktree / "sub dir"
    sub.mkdir()
    os.chmod(sub, 0o777)
    script = 'printf "%s|" "$@"; printf "[%s][%s]" "$K" "$(pwd)"; wc -c; echo err >&2; exit 9'
    argv = ["sh", "-c", script, "arg0", "a'b", 'c"d $HOME', "x\ny", ""]
    env = {"K": "v 'q'\nw", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    payload = b"z" * 100_000

    async def run(runner: Any, attempt: str) -> tuple[bytes, bytes, int, str, str | None]:
        await runner.ensure_container(attempt, str(worktree), str(repo / ".git" / "objects"))
        # the launcher is started in the background: the warm runner's is waited for
        pre = await _waiting_launcher(runner, attempt) if runner is warm else None
        proc = await runner.spawn(argv, str(sub), env, stdin=payload, attempt_id=attempt)
        out, err, code = await collect(proc)
        return out, err, code, proc.id, pre

    async def main() -> tuple[Any, Any, tuple[bytes, bytes, int], tuple[bytes, bytes, int]]:
        a = await run(warm, "att-warm")
        b = await run(fresh, "att-fresh")
        no_stdin = await warm.spawn(["sh", "-c", "cat; echo done"], str(worktree), {}, attempt_id="att-warm")
        missing = await warm.spawn(["sh", "-c", "exit 3"], str(worktree), {}, attempt_id="att-warm")
        return a, b, await collect(no_stdin), await collect(missing)

    a, b, no_stdin, exit3 = asyncio.run(main())
    assert a[4] is not None and a[3] == a[4]  # the warm runner used its waiting launcher
    assert b[4] is None
    assert a[:3] == b[:3]  # stdout, stderr and exit code exactly as with a fresh exec
    assert a[0] == f"a'b|c\"d $HOME|x\ny||[v 'q'\nw][{sub}]100000\n".encode()
    assert (a[1], a[2]) == (b"err\n", 9)
    assert no_stdin == (b"done\n", b"", 0)  # stdin ends at once when none is given
    assert exit3[2] == 3


def test_prestarted_exec_is_stopped_refilled_and_removed_with_its_container(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()

    async def main() -> tuple[int, str, str, bool | None]:
        await runner.ensure_container("att-st", str(worktree), str(repo / ".git" / "objects"))
        first = await _waiting_launcher(runner, "att-st")
        proc = await runner.spawn(["sleep", "60"], str(worktree), {}, attempt_id="att-st")
        assert proc.id == first and proc.pid > 1
        code = await proc.stop(escalation_seconds=2)
        second = await _waiting_launcher(runner, "att-st")  # refilled
        assert await runner.remove_container("att-st")
        return code, first, second, _exec_running(second)

    code, first, second, after = asyncio.run(main())
    assert code == 130  # SIGINT reached the command that replaced the launcher
    assert second != first
    assert after is None  # the container and its waiting launcher are gone
    assert _containers(runner.instance_id) == []


def test_closing_the_runner_ends_waiting_launchers(
    make_runner: Callable[..., Any], attempt_repo: tuple[Path, Path]
) -> None:
    repo, worktree = attempt_repo
    runner = make_runner()

    async def main() -> str:
        await runner.ensure_container("att-close", str(worktree), str(repo / ".git" / "objects"))
        exec_id = await _waiting_launcher(runner, "att-close")
        await runner.close()
        return exec_id

    exec_id = asyncio.run(main())
    deadline = time.monotonic() + 10
    while _exec_running(exec_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _exec_running(exec_id) is False  # its stdin closed: the shell exited, the container stays


# --- warm pool through the HTTP API ---------------------------------------------------------------


@pytest.fixture
def warm_cloud(tmp_path: Path) -> Iterator[LiveServer]:
    config = make_config(
        tmp_path,
        mode="cloud",
        docker=hardened_docker(
            warm_pool_size=1,
            warm_pool_idle_seconds=300.0,
        ),
    )
    instance = instance_id(config)
    try:
        with live_server(config) as server:
            use_fake_agent(server, SHELL_AGENT)
            server.instance = instance  # type: ignore[attr-defined]
            yield server
    finally:
        remove_instance_containers(instance)


def _project(server: LiveServer, tmp_path: Path) -> dict[str, Any]:
    project = server.ok(
        "POST",
        "/api/projects",
        json={"name": "warm", "git_repo_path": str(tmp_path / "warmproj"), "use_existing_repo": False},
    )
    repo = pygit2.Repository(project["git_repo_path"])
    shutil.copy(
        Path(__file__).parent / "agents" / "fake_agent.sh", Path(project["git_repo_path"]) / ".agent.sh"
    )
    repo.index.add(".agent.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "add agent", repo.index.write_tree(), [repo.head.target])
    return project  # type: ignore[no-any-return]


def _pool_ids(server: LiveServer) -> set[str]:
    return {str(s.attempt_id) for s in server.services.executions.warm_pool.slots()}


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_warm_pool_serves_the_next_attempt_and_leaves_nothing_behind(
    warm_cloud: LiveServer, tmp_path: Path
) -> None:
    server = warm_cloud
    instance = server.instance  # type: ignore[attr-defined]
    project = _project(server, tmp_path)
    task1, attempt1 = start(server, project, "Cold one")
    wait_processes(server, attempt1["id"], 1, timeout=60)
    wait_task_status(server, task1["id"], "inreview")
    _wait(lambda: len(_pool_ids(server)) == 1)  # the project is active: one warm container
    warm_id = next(iter(_pool_ids(server)))
    labels = {c["Labels"]["anyon.attempt"] for c in _containers(instance)}
    assert labels == {attempt1["id"], warm_id}

    task2, attempt2 = start(server, project, "Warm one")
    assert attempt2["id"] == warm_id  # the attempt took the warm container's id ...
    assert attempt2["branch"].endswith(f"{warm_id[:4]}-warm-one")  # ... and keeps the spec's branch name
    processes = wait_processes(server, attempt2["id"], 1, timeout=60)
    assert [p["status"] for p in processes] == ["completed"]
    wait_task_status(server, task2["id"], "inreview")
    worktree = server.ok("GET", f"/api/task-attempts/{attempt2['id']}")["container_ref"]
    assert worktree.endswith(f"/{warm_id[:4]}-warm")
    assert {"agent.txt", "whoami.txt"} <= branch_files(project["git_repo_path"], attempt2["branch"])
    _wait(lambda: len(_pool_ids(server)) == 1 and warm_id not in _pool_ids(server))  # refilled
    refill_id = next(iter(_pool_ids(server)))

    # deleting the tasks removes their containers; the project's warm container stays
    for task in (task1, task2):
        assert server.delete(f"/api/tasks/{task['id']}").status_code == 202
    _wait(lambda: {c["Labels"]["anyon.attempt"] for c in _containers(instance)} == {refill_id})
    _wait(lambda: not Path(worktree).exists())

    # deleting the project removes its warm container, secrets and slot folder at once
    slot = server.services.executions.warm_pool.slots()[0]
    assert server.delete(f"/api/projects/{project['id']}").status_code < 300
    assert _containers(instance) == []
    assert not Path(slot.folder).exists()
    assert not server.services.docker.secrets.path(str(slot.attempt_id)).exists()


def test_idle_project_loses_its_warm_container_and_shutdown_removes_the_rest(
    warm_cloud: LiveServer, tmp_path: Path
) -> None:
    server = warm_cloud
    instance = server.instance  # type: ignore[attr-defined]
    project = _project(server, tmp_path)
    task, attempt = start(server, project, "Only one")
    wait_processes(server, attempt["id"], 1, timeout=60)
    wait_task_status(server, task["id"], "inreview")
    _wait(lambda: len(_pool_ids(server)) == 1)
    pool = server.services.executions.warm_pool
    loop = server.services.events.loop
    pool.idle_seconds = 0.0
    assert asyncio.run_coroutine_threadsafe(pool.reap(), loop).result(60) == [project["id"]]
    assert {c["Labels"]["anyon.attempt"] for c in _containers(instance)} == {attempt["id"]}

    pool.idle_seconds = 300.0
    task2, _ = start(server, project, "Again")  # cold again, and the pool refills
    wait_task_status(server, task2["id"], "inreview")
    _wait(lambda: len(_pool_ids(server)) == 1)
    warm_id = next(iter(_pool_ids(server)))
    asyncio.run_coroutine_threadsafe(server.services.executions.stop_all(), loop).result(60)
    assert warm_id not in {c["Labels"]["anyon.attempt"] for c in _containers(instance)}
    assert uuid.UUID(warm_id)
