"""REST throughput under load: requests/s and p50/p99 of two reads the UI polls, 64 connections.

Run:  python bench/api_throughput.py [--tasks 1000] [--connections 64] [--duration 10] [--rounds 3]
                                     [--baseline PATH] [--check-etag]

Starts a real server (``python -m anyon serve`` in a subprocess on 127.0.0.1, SQLite, everything in a
temporary directory), seeds it through the API with 10 projects and ``--tasks`` tasks in one of them, and
loads it with ``wrk`` (``apt-get install wrk``), a separate process, ``--connections`` keep-alive
connections on 2 threads, for ``--duration`` seconds per route:

* ``GET /api/projects``
* ``GET /api/tasks?project_id=`` (the board, ``--tasks`` tasks)
* the same board with ``If-None-Match`` set to its ETag (what a polling UI sends once it has the board;
  only when the server answers with an ETag)

``--uncached`` adds a server of this checkout with ``database.read_cache = false`` (every request
queries). ``--baseline PATH`` adds a server running the code of another checkout (e.g. a worktree of
the commit before a change) with the same data. The servers are loaded one after the other, the order
alternating each round, so that "before" and "after" share the same moments of a noisy machine. Each figure is
the median over ``--rounds`` rounds. The load generator shares the machine's cores with the server, so
the figures are a floor.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_fanout import ok, start_server

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class Run:
    rps: float
    p50: float
    p99: float
    non_2xx: int


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    base: str
    routes: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, headers: dict[str, str], connections: int, duration: int) -> Run:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\n\s+50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Run(rps, p50, p99, int(bad.group(1)) if bad else 0)


def seed(server: Server, tmp: Path, tasks: int) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        projects = [
            ok(
                client,
                "POST",
                "/api/projects",
                json={"name": f"p{i}", "git_repo_path": str(tmp / f"repo{i}"), "use_existing_repo": False},
            )
            for i in range(10)
        ]
        board = projects[0]["id"]  # type: ignore[index]
        for i in range(tasks):
            ok(client, "POST", "/api/tasks", json={"project_id": board, "title": f"task {i}"})
        server.routes["GET /api/projects"] = ("/api/projects", {})
        server.routes[f"GET /api/tasks?project_id= ({tasks} tasks)"] = (f"/api/tasks?project_id={board}", {})
        etag = client.get(f"/api/tasks?project_id={board}").headers.get("etag")
        if etag:
            server.routes["  same, If-None-Match (304)"] = (
                f"/api/tasks?project_id={board}",
                {"If-None-Match": etag},
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None, help="checkout whose code is 'before'")
    parser.add_argument(
        "--uncached", action="store_true", help="also load a server with database.read_cache = false"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="anyon-throughput-") as raw:
        tmp = Path(raw)
        checkouts: list[tuple[str, dict[str, str | None]]] = [("now", {})]
        if args.uncached:
            checkouts.append(("nocache", {"ANYON_DATABASE__READ_CACHE": "false"}))
        if args.baseline is not None:
            checkouts.insert(0, ("before", {"PYTHONPATH": str(args.baseline.resolve())}))
        servers: list[Server] = []
        try:
            for name, env in checkouts:
                (tmp / name).mkdir()
                # the server's working directory is not a checkout: ``python -m`` puts it first on sys.path
                with contextlib.chdir(tmp / name):
                    proc, base = start_server(tmp / name, env)
                servers.append(Server(name, proc, base))
                seed(servers[-1], tmp / name, args.tasks)
            results: dict[tuple[str, str], list[Run]] = {}
            for round_no in range(args.rounds):
                order = servers if round_no % 2 == 0 else list(reversed(servers))
                for route in servers[0 if args.baseline is None else 1].routes:
                    for server in order:
                        if route not in server.routes:
                            continue
                        path, headers = server.routes[route]
                        run = wrk(server.base + path, headers, args.connections, args.duration)
                        results.setdefault((route, server.name), []).append(run)
            print(
                f"wrk, {args.connections} connections, {args.duration} s per run, median of {args.rounds} "
                "rounds (requests/s, latency p50/p99 in ms)"
            )
            for route in servers[0 if args.baseline is None else 1].routes:
                for server in servers:
                    runs = results.get((route, server.name))
                    if not runs:
                        continue
                    rps = statistics.median(r.rps for r in runs)
                    p50 = statistics.median(r.p50 for r in runs)
                    p99 = statistics.median(r.p99 for r in runs)
                    bad = sum(r.non_2xx for r in runs)
                    every = ", ".join(f"{r.rps:.0f}" for r in runs)
                    print(
                        f"{route:42s} {server.name:7s} {rps:8.0f} req/s  p50 {p50:7.2f}  p99 {p99:7.2f}"
                        f"  (rounds: {every}){f'  non-2xx: {bad}' if bad else ''}"
                    )
        finally:
            for server in servers:
                server.proc.send_signal(signal.SIGINT)
            for server in servers:
                try:
                    server.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
