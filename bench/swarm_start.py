"""Attempt start on a swarm worker node vs the single-VM runner, side by side, in one run.

Starts a private two-node swarm (two dockerds of its own, as tests/test_swarm_runner.py does; needs root,
dockerd and the test image), then two cloud-mode servers in this process:

* **engine** — the single-VM runner (``docker.runner = "engine"``) on the worker's own dockerd;
* **swarm** — the Swarm runner (``docker.runner = "swarm"``) on the manager, constrained to the worker.

Both run the same image on the same daemon, so the difference is the placement (service create, the
scheduler, the task start, the manager's view) and nothing else. Each attempt (POST → agent's first byte)
runs on a fresh repository checkout of ``--files`` files; the attempts alternate between the two servers.
Each task is deleted after its attempt, so every attempt provisions a container (``--warm 0``) or claims
the warm one the pool keeps (``--warm 1``, the ``[cloud]`` default).

A first part measures the runner alone (``ensure_container`` on an empty folder → running, ``true``
through a pre-started exec, teardown), where the placement is not hidden behind the checkout.

    sudo python bench/swarm_start.py [--containers 10] [--attempts 10] [--files 2000] [--warm 0 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anyon.harness.config import make_config  # noqa: E402
from anyon.harness.live import LiveServer, live_server  # noqa: E402
from anyon.harness.swarm import ROLE_LABEL, TwoNodeSwarm, prerequisites  # noqa: E402
from bench.attempt_start import IMAGE, make_repo, pct, run_attempt, wait_quiet, wait_startup_jobs  # noqa: E402

RUNNERS = ("engine", "swarm")
STEPS = ("worktree_ready", "container_ready", "spawned", "first_byte")


@contextlib.contextmanager
def runner_server(
    runner: str, swarm: TwoNodeSwarm, workdir: Path, files: int, warm: int
) -> Iterator[tuple[LiveServer, str]]:
    docker: dict[str, Any] = {
        "image": IMAGE,
        "user": f"{os.getuid()}:{os.getgid()}",
        "network": "none",
        "warm_pool_size": warm,
        "cpus": 0.2,  # reservations: several attempts' containers fit on the worker at once
        "memory": 256 * 1024**2,
        "memory_swap": 256 * 1024**2,
    }
    if runner == "swarm":
        docker |= {
            "host": swarm.manager.url,
            "runner": "swarm",
            "swarm_constraints": (f"node.labels.{ROLE_LABEL}==worker",),
            "swarm_tls_dir": swarm.tls_dir,
        }
    else:
        docker["host"] = swarm.worker.url
    repo = workdir / "repo"
    make_repo(repo, files)
    config = make_config(workdir, mode="cloud", docker=docker, executions={"max_concurrent": 8})
    with live_server(config) as server:
        wait_startup_jobs(server)
        override = {"base_command_override": "sh ./.agent.sh"}
        server.ok(
            "PUT",
            "/api/profiles",
            json={"executors": {"CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": override}}}},
        )
        project = server.ok(
            "POST",
            "/api/projects",
            json={"name": runner, "git_repo_path": str(repo), "use_existing_repo": True},
        )
        try:
            yield server, project["id"]
        finally:
            server.services.database.bind()
            for task in server.ok("GET", f"/api/tasks?project_id={project['id']}"):
                server.delete(f"/api/tasks/{task['id']}")


def one(server: LiveServer, project_id: str, title: str) -> dict[str, float]:
    marks = run_attempt(server, project_id, title)
    server.services.database.bind()
    for task in server.ok("GET", f"/api/tasks?project_id={project_id}"):
        server.delete(f"/api/tasks/{task['id']}")  # its container goes: the next attempt provisions again
    # the delete finishes in the background on the bound database: let it end before the other server binds
    deadline = time.monotonic() + 60
    while server.ok("GET", f"/api/tasks?project_id={project_id}") and time.monotonic() < deadline:
        time.sleep(0.02)
    wait_quiet(server)
    return marks


def measure_runner(swarm: TwoNodeSwarm, workdir: Path, n: int) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {r: {"ready": [], "exec": [], "remove": []} for r in RUNNERS}
    with contextlib.ExitStack() as stack:
        servers = {r: stack.enter_context(runner_server(r, swarm, workdir / r, 10, 0)) for r in RUNNERS}
        for r in RUNNERS:
            provision_and_exec(servers[r][0], workdir / r, 1)  # warm-up, not counted
        for i in range(n):
            for r in RUNNERS if i % 2 == 0 else tuple(reversed(RUNNERS)):
                for key, values in provision_and_exec(servers[r][0], workdir / r, 1).items():
                    results[r][key] += values
    return results


def measure(
    swarm: TwoNodeSwarm, workdir: Path, files: int, attempts: int, warm: int
) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {r: [] for r in RUNNERS}
    with contextlib.ExitStack() as stack:
        servers = {
            r: stack.enter_context(runner_server(r, swarm, workdir / f"{r}-{warm}", files, warm))
            for r in RUNNERS
        }
        for r in RUNNERS:  # one unmeasured attempt each: imports, first connections, page cache
            one(*servers[r], "warm-up")
        for i in range(attempts):
            for r in RUNNERS if i % 2 == 0 else tuple(reversed(RUNNERS)):
                runs[r].append(one(*servers[r], f"attempt {i}"))
                time.sleep(0.3)
    return runs


def provision_and_exec(server: LiveServer, workdir: Path, n: int) -> dict[str, list[float]]:
    """The runner alone, on an empty folder: container ready (create → running, the step the checkout
    hides), teardown, and `true` through a pre-started exec in it (spawn → exit), ``n`` times each."""
    runner = server.services.docker
    folder = workdir / "provision"
    objects = workdir / "objects"
    folder.mkdir(parents=True, exist_ok=True)
    objects.mkdir(parents=True, exist_ok=True)

    async def run() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"ready": [], "exec": [], "remove": []}
        for _ in range(n):
            attempt_id = str(uuid.uuid4())
            t = time.perf_counter()
            await runner.ensure_container(attempt_id, str(folder), str(objects))
            out["ready"].append((time.perf_counter() - t) * 1000)
            for _ in range(3):
                await asyncio.sleep(0.3)  # the pre-started exec refills between commands
                t = time.perf_counter()
                proc = await runner.spawn(["true"], str(folder), {}, None, attempt_id=attempt_id)
                await asyncio.gather(_drain(proc.stdout), _drain(proc.stderr))
                await proc.wait()
                out["exec"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            await runner.remove_container(attempt_id)
            out["remove"].append((time.perf_counter() - t) * 1000)
        return out

    return asyncio.run_coroutine_threadsafe(run(), server.services.events.loop).result(600)


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


def report_runner(results: dict[str, dict[str, list[float]]]) -> None:
    print(f"--- the runner alone ({len(results['engine']['ready'])} containers per runner, alternating)")
    for runner in RUNNERS:
        r = results[runner]
        print(
            f"{runner:6s} container ready p50 {statistics.median(r['ready']):7.1f} ms  "
            f"p95 {pct(r['ready'], 0.95):7.1f} ms   `true` via pre-started exec p50 "
            f"{statistics.median(r['exec']):6.1f} ms   teardown p50 {statistics.median(r['remove']):6.1f} ms"
        )


def report(warm: int, runs: dict[str, list[dict[str, float]]]) -> None:
    print(f"--- warm pool size {warm} ({len(runs['engine'])} attempts per runner)")
    p50s = {}
    for runner in RUNNERS:
        firsts = [r["first_byte"] for r in runs[runner]]
        p50s[runner] = statistics.median(firsts)
        steps = ", ".join(
            f"{s} {statistics.median(r.get(s, float('nan')) for r in runs[runner]):.1f}" for s in STEPS
        )
        print(
            f"{runner:6s} first byte p50 {p50s[runner]:7.1f} ms  p95 {pct(firsts, 0.95):7.1f} ms   "
            f"median ms since POST: {steps}"
        )
    print(
        f"swarm / engine p50: {p50s['swarm'] / p50s['engine']:.2f}x "
        f"(+{p50s['swarm'] - p50s['engine']:.1f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--warm", type=int, nargs="*", default=[0, 1], help="warm pool sizes to measure")
    parser.add_argument("--containers", type=int, default=10, help="runner-alone placements per runner")
    args = parser.parse_args()
    missing = prerequisites()
    if missing:
        print(f"cannot start a private swarm: {missing}", file=sys.stderr)
        return 2
    swarm = TwoNodeSwarm(IMAGE)
    try:
        swarm.start()
        with tempfile.TemporaryDirectory(prefix="anyon-bench-swarm-") as tmp:
            if args.containers:
                report_runner(measure_runner(swarm, Path(tmp) / "runner", args.containers))
            for warm in args.warm:
                report(warm, measure(swarm, Path(tmp), args.files, args.attempts, warm))
    finally:
        swarm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
