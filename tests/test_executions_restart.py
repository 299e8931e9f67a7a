"""Cloud executions under faults, with the server run as ops run it (``python -m anyon serve``):

* kill -9 of the server while an agent runs: the restart sweeps the adopted container (no agent left),
  marks the process failed, Stop answers and a follow-up runs alone;
* a Docker Engine outage, simulated with a socket proxy the test controls: Stop, follow-up and the delete
  of a task with a lost process answer 503 in the envelope and write nothing, statuses settle, and the
  container of a task deleted during the outage is gone after the next reconcile tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pygit2
import pytest

from tests.test_executions_cloud import IMAGE, require_test_image
from tests.test_executions_local import start

pytestmark = pytest.mark.docker

AGENT = Path(__file__).parent / "agents" / "sleepy_agent.sh"
DOCKER_SOCK = "/var/run/docker.sock"


class SocketProxy:
    """A unix-socket proxy to the Docker Engine that the test can cut (every connection) and restore."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="docker-proxy")
        self._thread.start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():  # a half-close (end of an exec's stdin) passes through as such
                writer.write_eof()
                return
        except (OSError, asyncio.CancelledError):
            pass
        with contextlib.suppress(Exception):
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(DOCKER_SOCK)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    def resume(self) -> None:
        async def start() -> None:
            self._server = await asyncio.start_unix_server(self._client, path=self.path)

        self._run(start())

    def pause(self) -> None:
        """The Engine "goes away": no new connection is accepted and every open one is cut."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            for writer in list(self._writers):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
            self._writers.clear()

        self._run(stop())

    def close(self) -> None:
        self.pause()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class Server:
    """``python -m anyon serve`` in cloud mode on loopback, restartable on the same data directory."""

    def __init__(self, root: Path, docker_host: str) -> None:
        self.root = root
        settings = root / "settings.toml"
        settings.write_text(
            '[deployment]\nmode = "cloud"\n'
            "[docker]\n"
            f'host = "{docker_host}"\nimage = "{IMAGE}"\nuser = "{os.getuid()}:{os.getgid()}"\n'
            'network = "none"\nmemory = "256m"\nmemory_swap = "256m"\npids_limit = 128\ncpus = 1.0\n'
            "warm_pool_size = 0\nreconcile_interval_seconds = 1.0\n"
            "[executions]\nstop_escalation_seconds = 0.5\n"
        )
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith("ANYON_") and k not in ("HOST", "PORT")
        }
        self.env.update(
            HOME=str(root / "home"),
            ANYON_BASE_DIR=str(root / "anyon"),
            ANYON_CLOUD_BASE_DIR=str(root / "anyon"),
            ANYON_DATA_DIR=str(root / "anyon" / "data"),
            ANYON_WORKTREE_DIR=str(root / "anyon" / "worktrees"),
            ANYON_WORKSPACE_DIR=str(root / "anyon" / "workspace"),
            ANYON_TEMP_DIR=str(root / "anyon" / "tmp"),
            ANYON_SETTINGS_FILE=str(settings),
            ANYON_LOGGING__FORMAT="text",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: httpx.Client | None = None
        self.log = root / "server.log"

    def start(self) -> None:
        port_file = self.root / "anyon" / "tmp" / "anyon.port"
        port_file.unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "anyon", "serve", "--port", "0"],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=str(Path(__file__).parent.parent),
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-4000:]
            if port_file.exists() and port_file.read_text().strip():
                base = f"http://127.0.0.1:{port_file.read_text().strip()}"
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                        self.client = httpx.Client(base_url=base, timeout=30)
                        return
            assert time.monotonic() < deadline, self.log.read_text()[-4000:]
            time.sleep(0.1)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        if self.client is not None:
            self.client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.client is not None:
            self.client.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        assert self.client is not None
        return self.client.request(method, path, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        response = self.request(method, path, **kw)
        assert response.status_code < 300, (response.status_code, response.text)
        body = response.json()
        assert body["success"] is True, body
        return body["data"]


def _docker() -> Any:
    import docker

    return docker.APIClient(base_url=f"unix://{DOCKER_SOCK}", version="auto", timeout=30)


def _instance_containers(api: Any, data_dir: Path) -> list[dict[str, Any]]:
    import hashlib

    instance = hashlib.sha256(os.path.realpath(data_dir).encode()).hexdigest()[:16]
    return list(api.containers(all=True, filters={"label": f"anyon.instance={instance}"}))


def _container_of(api: Any, data_dir: Path, attempt_id: str) -> dict[str, Any] | None:
    found = [c for c in _instance_containers(api, data_dir) if c["Labels"].get("anyon.attempt") == attempt_id]
    return found[0] if found else None


def _agents(api: Any, container_id: str) -> list[str]:
    """Command lines of the agent processes (and their sleeping children) inside the container."""
    out = api.exec_start(api.exec_create(container_id, ["ps", "-o", "pid,args"]))
    lines = out.decode(errors="replace").splitlines()[1:]
    return [line for line in lines if ".agent.sh" in line or "sleep 300" in line]


def _stored_log(data_dir: Path, process_id: str) -> str:
    """The process's output as the server stored it (read from its database file)."""
    import uuid

    from anyon.services.db.database import Database
    from anyon.services.logs.logstore import LogStore

    database = Database.from_url(f"sqlite:///{data_dir / 'anyon.db'}")
    try:
        with database.connection():
            return "".join(c.content for c in LogStore(database).read(uuid.UUID(process_id)))
    finally:
        database.close()


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def server_root(tmp_path: Path) -> Iterator[Path]:
    require_test_image()
    yield tmp_path
    api = _docker()
    try:
        for info in _instance_containers(api, tmp_path / "anyon" / "data"):
            api.remove_container(info["Id"], force=True, v=True)
    finally:
        api.close()


def _setup_project(server: Server, root: Path) -> dict[str, Any]:
    profiles = {
        "executors": {
            "CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": {"base_command_override": "sh ./.agent.sh"}}}
        }
    }
    server.ok("PUT", "/api/profiles", json=profiles)
    project = server.ok(
        "POST",
        "/api/projects",
        json={"name": "faults", "git_repo_path": str(root / "repo"), "use_existing_repo": False},
    )
    repo = pygit2.Repository(project["git_repo_path"])
    shutil.copy(AGENT, Path(project["git_repo_path"]) / ".agent.sh")
    repo.index.add(".agent.sh")
    repo.index.write()
    sig = pygit2.Signature("Test", "test@example.com")
    repo.create_commit("HEAD", sig, sig, "add agent", repo.index.write_tree(), [repo.head.target])
    return project  # type: ignore[no-any-return]


def _processes(server: Server, attempt_id: str) -> list[dict[str, Any]]:
    return server.ok("GET", f"/api/execution-processes?task_attempt_id={attempt_id}")  # type: ignore[no-any-return]


def _running_agent(server: Server, api: Any, data_dir: Path, attempt_id: str) -> str:
    """Wait until the attempt's agent runs in its container; returns the container id."""

    def ready() -> str | None:
        procs = _processes(server, attempt_id)
        if not any(p["run_reason"] == "codingagent" and p["status"] == "running" for p in procs):
            return None
        info = _container_of(api, data_dir, attempt_id)
        return info["Id"] if info is not None and _agents(api, info["Id"]) else None

    return _wait(ready, 90, "the agent to run")  # type: ignore[no-any-return]  # a loaded machine is slow


def test_kill9_restart_leaves_no_agent_running_and_a_follow_up_runs_alone(server_root: Path) -> None:
    server = Server(server_root, f"unix://{DOCKER_SOCK}")
    data_dir = server_root / "anyon" / "data"
    api = _docker()
    try:
        server.start()
        project = _setup_project(server, server_root)
        task, attempt = start(server, project, "sleep")
        container = _running_agent(server, api, data_dir, attempt["id"])

        server.kill9()
        assert _agents(api, container), "the crash must leave the agent running (the fault under test)"

        started = time.monotonic()
        server.start()
        restart_seconds = time.monotonic() - started
        # once the restarted server answers, nothing of the previous run runs in the container
        assert _agents(api, container) == []
        assert _container_of(api, data_dir, attempt["id"])["Id"] == container  # adopted, not replaced
        procs = _processes(server, attempt["id"])
        assert [p["status"] for p in procs] == ["failed"]
        assert server.ok("GET", f"/api/tasks/{task['id']}")["status"] == "inreview"
        assert "container swept at restart" in _stored_log(data_dir, procs[0]["id"])

        assert server.ok("POST", f"/api/task-attempts/{attempt['id']}/stop") is None

        follow = server.ok("POST", f"/api/task-attempts/{attempt['id']}/follow-up", json={"prompt": "again"})
        _wait(lambda: len(_agents(api, container)) >= 1, 20, "the follow-up agent")
        time.sleep(0.3)
        agents = [line for line in _agents(api, container) if ".agent.sh" in line]
        assert len(agents) == 1, agents  # alone: no leftover beside it
        server.ok("POST", f"/api/task-attempts/{attempt['id']}/stop")
        statuses = {p["id"]: p["status"] for p in _processes(server, attempt["id"])}
        assert statuses[follow["id"]] == "killed"
        _wait(lambda: _agents(api, container) == [], 10, "the stopped agent to go")
        print(f"restart to healthy after kill -9: {restart_seconds:.2f} s")
    finally:
        server.stop()
        api.close()


def test_engine_outage_answers_503_settles_and_the_next_reconcile_cleans_up(server_root: Path) -> None:
    proxy = SocketProxy(server_root / "docker-proxy.sock")
    proxy.resume()
    server = Server(server_root, f"unix://{proxy.path}")
    data_dir = server_root / "anyon" / "data"
    api = _docker()
    try:
        server.start()
        project = _setup_project(server, server_root)
        quick_task, quick = start(server, project, "quick one")
        _wait(lambda: server.ok("GET", f"/api/tasks/{quick_task['id']}")["status"] == "inreview", 30, "quick")
        quick_container = _container_of(api, data_dir, quick["id"])
        assert quick_container is not None
        quick_worktree = server.ok("GET", f"/api/task-attempts/{quick['id']}")["container_ref"]
        task, attempt = start(server, project, "sleep")
        container = _running_agent(server, api, data_dir, attempt["id"])

        proxy.pause()
        # the lost process settles by itself: failed with the reason, the task leaves inprogress
        _wait(lambda: _processes(server, attempt["id"])[-1]["status"] != "running", 15, "the lost process")
        before = _processes(server, attempt["id"])
        assert [p["status"] for p in before] == ["failed"]
        assert "Lost track of the process" in _stored_log(data_dir, before[0]["id"])
        assert server.ok("GET", f"/api/tasks/{task['id']}")["status"] == "inreview"
        logs = server.ok("GET", f"/api/task-attempts/{attempt['id']}")  # the attempt row still reads
        assert logs["id"] == attempt["id"]

        for method, path, body in (
            ("POST", f"/api/task-attempts/{attempt['id']}/stop", None),
            ("POST", f"/api/task-attempts/{attempt['id']}/follow-up", {"prompt": "more"}),
            ("DELETE", f"/api/tasks/{task['id']}", None),
        ):
            response = server.request(method, path, json=body)
            assert response.status_code == 503, (path, response.status_code, response.text)
            envelope = response.json()
            assert envelope["success"] is False and "does not answer" in envelope["message"], envelope
            assert response.headers.get("retry-after")
        # nothing half-written: same processes, the task still there
        assert _processes(server, attempt["id"]) == before
        assert server.ok("GET", f"/api/tasks/{task['id']}")["status"] == "inreview"

        # a settled task may go during the outage; its container is left for the reconcile
        assert server.request("DELETE", f"/api/tasks/{quick_task['id']}").status_code == 202
        time.sleep(0.5)
        assert _container_of(api, data_dir, quick["id"]) is not None

        proxy.resume()
        _wait(lambda: _container_of(api, data_dir, quick["id"]) is None, 10, "the leaked container to go")
        _wait(lambda: not Path(quick_worktree).exists(), 10, "the leaked worktree to go")
        secrets = server_root / "anyon" / "tmp" / "cloud-secrets"
        assert not any(p.name == quick["id"] for p in secrets.glob("*")) if secrets.exists() else True
        # the lost agent is swept once the Engine answers again
        _wait(lambda: _agents(api, container) == [], 10, "the lost agent to be killed")
        assert server.request("DELETE", f"/api/tasks/{task['id']}").status_code == 202
        _wait(lambda: _container_of(api, data_dir, attempt["id"]) is None, 10, "the container to go")
        assert "Traceback" not in server.log.read_text() or "InternalError" not in server.log.read_text()
    finally:
        server.stop()
        proxy.close()
        api.close()
