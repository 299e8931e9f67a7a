"""Fan-out benchmark of the raw-logs stream: one process printing many lines, many WebSocket followers.

Run:  python bench/stream_fanout.py [--lines 200000] [--clients 50] [--timeout 100]

Starts a real server (``python -m anyon serve`` in a subprocess, everything under a temporary directory),
creates a project whose dev-server script is a Python one-liner printing ``--lines`` numbered lines, each
carrying the time it was written, starts it through the execution engine (``start-dev-server``), and has
``--clients`` WebSocket clients follow ``/api/execution-processes/{id}/raw-logs/ws`` from the first byte.

Prints, in one run: lines delivered per client (min/max, and whether every client got every line),
p50/p99/max delivery latency (write time in the process → decoded by the client), and the server's RSS
before and at its peak during the run (sampled from /proc every 50 ms). Targets: every client gets every
line; p99 under 250 ms; RSS growth under 150 MB. Latency is sampled once per received frame, from the
oldest complete line in it (the worst case of that frame); lines are counted with ``str.count`` so that
parsing on the measuring side does not become the bottleneck. The clients are spread over
``--client-processes`` OS processes (default 4): with all 50 in one Python process the measuring side
itself was the bottleneck (p99 ~2.4 s while the server's event loop was busy ~40% of the time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "tests" / "agents" / "fake_claude.py"

PRINTER = (
    "import sys, time\n"
    "time.sleep({delay})\n"
    "w = sys.stdout.write\n"
    "for i in range({lines}):\n"
    "    w(f'{{i}} {{time.time():.6f}}\\n')\n"
    "    if i % 50 == 49:\n"
    "        sys.stdout.flush()\n"
    "        time.sleep(0.0005)\n"
    "sys.stdout.flush()\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except OSError:
                return


def start_server(
    tmp: Path, extra_env: dict[str, str | None] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``anyon serve`` on loopback with its data in ``tmp``; ``extra_env`` sets (or, with None, unsets)
    variables of the server's environment. Returns the process and its base URL once it is healthy."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        ANYON_DATA_DIR=str(tmp / "data"),
        ANYON_WORKTREE_DIR=str(tmp / "worktrees"),
        ANYON_TEMP_DIR=str(tmp / "tmp"),
        ANYON_DATABASE_FILE=str(tmp / "data" / "anyon.db"),
        ANYON_PATHS__WORKSPACE_DIR=str(tmp / "workspace"),
        PYTHONPATH=str(ROOT),
    )
    env.pop("ANYON_DATABASE__URL", None)
    for name, value in (extra_env or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    settings = tmp / "settings.toml"
    settings.write_text("")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anyon",
            "serve",
            "--settings",
            str(settings),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "server.err", "wb"),  # noqa: SIM115 - lives as long as the server
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(tmp / 'server.err').read_text()[-2000:]}")
        try:
            if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start within 30 s")


def ok(client: httpx.Client, method: str, path: str, **kw: object) -> object:
    response = client.request(method, path, **kw)  # type: ignore[arg-type]
    body = response.json()
    if response.status_code >= 300 or not body.get("success"):
        raise SystemExit(f"{method} {path} failed: {response.status_code} {body}")
    return body["data"]


def prepare(base: str, tmp: Path, lines: int, delay: float) -> str:
    """Project + attempt (stand-in agent), then the printer as dev server; returns its process id."""
    with httpx.Client(base_url=base, timeout=30) as c:
        override = f"{sys.executable} {AGENT}"
        profiles = {
            "executors": {"CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": {"base_command_override": override}}}}
        }
        ok(c, "PUT", "/api/profiles", json=profiles)
        script = f"{shlex.quote(sys.executable)} -c {shlex.quote(PRINTER.format(lines=lines, delay=delay))}"
        project = ok(
            c,
            "POST",
            "/api/projects",
            json={
                "name": "bench",
                "git_repo_path": str(tmp / "repo"),
                "use_existing_repo": False,
                "dev_script": script,
            },
        )
        task = ok(c, "POST", "/api/tasks", json={"project_id": project["id"], "title": "noop"})  # type: ignore[index]
        attempt = ok(
            c,
            "POST",
            "/api/task-attempts",
            json={
                "task_id": task["id"],
                "executor_profile_id": {"executor": "CLAUDE_CODE"},
                "base_branch": "main",  # type: ignore[index]
            },
        )
        aid = attempt["id"]  # type: ignore[index]
        deadline = time.monotonic() + 30
        while True:
            procs = ok(c, "GET", f"/api/execution-processes?task_attempt_id={aid}")
            if procs and all(p["status"] != "running" for p in procs):  # type: ignore[union-attr]
                break
            if time.monotonic() > deadline:
                raise SystemExit("the attempt's agent did not finish")
            time.sleep(0.05)
        ok(c, "POST", f"/api/task-attempts/{aid}/start-dev-server")
        procs = ok(c, "GET", f"/api/execution-processes?task_attempt_id={aid}")
        dev = [p for p in procs if p["run_reason"] == "devserver"]  # type: ignore[union-attr, index]
        return str(dev[0]["id"])


class Follower:
    def __init__(self) -> None:
        self.lines = 0
        self.latencies: list[float] = []
        self.partial = ""
        self.finished = False
        self.out_of_order = 0
        self.stderr = ""

    def feed(self, text: str, now: float) -> None:
        """Count lines at C speed; time the *oldest* complete line of each frame (a conservative sample)."""
        data = self.partial + text
        complete = data.count("\n")
        if not complete:
            self.partial = data
            return
        first = data[: data.index("\n")]
        number, _, stamp = first.partition(" ")
        if int(number) != self.lines:
            self.out_of_order += 1
        self.latencies.append(now - float(stamp))
        self.lines += complete
        self.partial = data[data.rindex("\n") + 1 :]


async def follow(url: str, follower: Follower, deadline: float) -> None:
    async with connect(url, max_size=None, open_timeout=30) as ws:
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
            now = time.time()
            frame = json.loads(raw)
            if frame == {"finished": True}:
                follower.finished = True
                return
            for op in frame["JsonPatch"]:
                if op["value"]["type"] == "STDOUT":
                    follower.feed(op["value"]["content"], now)
                else:
                    follower.stderr += op["value"]["content"]


async def run_clients(ws_base: str, pid: str, clients: int, timeout: float) -> list[Follower]:
    followers = [Follower() for _ in range(clients)]
    deadline = time.monotonic() + timeout
    url = f"{ws_base}/api/execution-processes/{pid}/raw-logs/ws"
    results = await asyncio.gather(*(follow(url, f, deadline) for f in followers), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            print(f"  client error: {r!r}")
    return followers


def _client_process(ws_base: str, pid: str, clients: int, timeout: float) -> list[Follower]:
    return asyncio.run(run_clients(ws_base, pid, clients, timeout))


def run_client_processes(
    ws_base: str, pid: str, clients: int, timeout: float, processes: int
) -> list[Follower]:
    """The clients, spread over ``processes`` OS processes: one Python process decoding every frame of
    50 connections would measure its own speed, not the server's."""
    import concurrent.futures

    shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=processes) as pool:
        futures = [pool.submit(_client_process, ws_base, pid, n, timeout) for n in shares if n]
        return [f for future in futures for f in future.result()]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=100.0, help="seconds the clients may take in total")
    parser.add_argument(
        "--client-processes", type=int, default=4, help="OS processes the clients are spread over"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anyon-fanout-") as tmpdir:
        tmp = Path(tmpdir)
        proc, base = start_server(tmp)
        try:
            pid = prepare(base, tmp, args.lines, delay=2.0)
            rss_before = rss_kib(proc.pid)
            sampler = Sampler(proc.pid)
            sampler.start()
            started = time.monotonic()  # includes the client processes' start-up and the script's 2 s delay
            followers = run_client_processes(
                base.replace("http://", "ws://"), pid, args.clients, args.timeout, args.client_processes
            )
            elapsed = time.monotonic() - started
            sampler.stop.set()
            sampler.join()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    counts = [f.lines for f in followers]
    if followers and followers[0].stderr:
        print(f"process stderr (first client): {followers[0].stderr[:500]!r}")
    latencies = [x for f in followers for x in f.latencies]
    disorder = sum(f.out_of_order for f in followers)
    p50, p99 = pct(latencies, 0.5) * 1000, pct(latencies, 0.99) * 1000
    every = all(c == args.lines for c in counts) and all(f.finished for f in followers)
    print(
        "source: a real process started through the execution engine (dev-server script), "
        "followed over /api/execution-processes/{id}/raw-logs/ws on a separate `anyon serve` process"
    )
    print(f"lines: {args.lines}, clients: {args.clients}, wall time: {elapsed:.1f} s")
    print(
        f"lines delivered per client: min {min(counts)}, max {max(counts)}; "
        f"every client got every line and finished: {every}; out of order: {disorder}"
    )
    print(
        f"delivery latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(latencies, default=float('nan')) * 1000:.1f} ms "
        f"(mean {statistics.fmean(latencies) * 1000 if latencies else float('nan'):.1f} ms)"
    )
    print(
        f"server RSS: {rss_before / 1024:.1f} MB before, {sampler.peak / 1024:.1f} MB peak, "
        f"growth {(sampler.peak - rss_before) / 1024:.1f} MB"
    )
    return 0 if every else 1


if __name__ == "__main__":
    sys.exit(main())
