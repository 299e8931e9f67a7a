"""Time from ``POST /api/task-attempts`` to the agent's first output byte, local vs cloud, in one run.

A real server (uvicorn on 127.0.0.1, in this process so both sides share one monotonic clock), a generated
repository of 2,000 files, and an agent that prints at once (a /bin/sh script, the same in both modes).
Cloud mode needs a Docker Engine and the test image (`bash scripts/build-test-image.sh`).

Prints: the cold first attempt, p50/p95 over a sequence of attempts, the cloud/local ratios, the median
breakdown (worktree ready, container ready, exec started, first byte), and the exec overhead of our
runner vs the `docker exec` CLI on the same container.

    python bench/attempt_start.py [--attempts 20] [--files 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pygit2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import make_config  # noqa: E402
from tests.live_server import LiveServer, live_server  # noqa: E402

AGENT = ROOT / "tests" / "agents" / "fake_agent.sh"
IMAGE = os.environ.get("ANYON_TEST_IMAGE", "anyon-test-runner:latest")


def make_repo(path: Path, files: int) -> None:
    repo = pygit2.init_repository(str(path), initial_head="main")
    for i in range(files):
        sub = path / f"pkg{i % 40}"
        sub.mkdir(exist_ok=True)
        (sub / f"file{i}.txt").write_text(f"line {i}\n" * 5)
    shutil.copy(AGENT, path / ".agent.sh")
    repo.index.add_all()
    repo.index.write()
    sig = pygit2.Signature("Bench", "bench@localhost")
    repo.create_commit("HEAD", sig, sig, "initial", repo.index.write_tree(), [])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_attempt(server: LiveServer, project_id: str, title: str) -> dict[str, float]:
    task = server.ok("POST", "/api/tasks", json={"project_id": project_id, "title": title})
    t0 = time.monotonic()
    attempt = server.ok(
        "POST",
        "/api/task-attempts",
        json={
            "task_id": task["id"],
            "executor_profile_id": {"executor": "CLAUDE_CODE"},
            "base_branch": "main",
        },
    )
    timings = server.services.executions.timings
    aid = uuid.UUID(attempt["id"])
    deadline = time.monotonic() + 60
    while "first_byte" not in timings.absolute(aid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no output from attempt {aid}")
        time.sleep(0.0005)
    marks = timings.absolute(aid)
    while server.ok("GET", f"/api/tasks/{task['id']}")["status"] != "inreview":
        time.sleep(0.01)
    return {step: (at - t0) * 1000 for step, at in marks.items()}


def measure(mode: str, workdir: Path, files: int, attempts: int) -> dict[str, Any]:
    repo = workdir / f"repo-{mode}"
    make_repo(repo, files)
    overrides: dict[str, Any] = {"executions": {"max_concurrent": 8}}
    if mode == "cloud":
        overrides["docker"] = {"image": IMAGE, "user": f"{os.getuid()}:{os.getgid()}", "network": "none"}
    config = make_config(workdir / mode, mode=mode, **overrides)
    with live_server(config) as server:
        profiles = {
            "executors": {
                "CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": {"base_command_override": "sh ./.agent.sh"}}}
            }
        }
        server.ok("PUT", "/api/profiles", content=json.dumps(profiles))
        project = server.ok(
            "POST",
            "/api/projects",
            json={"name": mode, "git_repo_path": str(repo), "use_existing_repo": True},
        )
        cold = run_attempt(server, project["id"], "cold start")
        runs = [run_attempt(server, project["id"], f"attempt {i}") for i in range(attempts)]
        exec_figures = exec_overhead(server) if mode == "cloud" else None
        # delete the tasks so containers and worktrees go away before the next mode
        for task in server.ok("GET", f"/api/tasks?project_id={project['id']}"):
            server.delete(f"/api/tasks/{task['id']}")
        time.sleep(1.0)
    return {"cold": cold, "runs": runs, "exec": exec_figures}


def exec_overhead(server: LiveServer, n: int = 15) -> dict[str, float]:
    """Our Engine-API exec vs `docker exec` CLI, running `true` in the same running container."""
    docker_runner = server.services.docker
    import docker

    api = docker.APIClient(version="auto")
    ours_attempt = next(
        c["Labels"]["anyon.attempt"]
        for c in api.containers(filters={"label": f"anyon.instance={docker_runner.instance_id}"})
    )
    container_id = api.containers(filters={"label": f"anyon.attempt={ours_attempt}"})[0]["Id"]
    worktree = api.inspect_container(container_id)["Mounts"][0]["Destination"]

    async def ours() -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            proc = await docker_runner.spawn(["true"], worktree, {}, None, attempt_id=ours_attempt)
            await asyncio.gather(_drain(proc.stdout), _drain(proc.stderr))
            await proc.wait()
            out.append((time.perf_counter() - t) * 1000)
        return out

    loop = server.services.events.loop
    ours_ms = asyncio.run_coroutine_threadsafe(ours(), loop).result(120)
    cli_ms = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["docker", "exec", container_id, "true"], check=True, capture_output=True)
        cli_ms.append((time.perf_counter() - t) * 1000)
    api.close()
    return {"ours_p50": statistics.median(ours_ms), "cli_p50": statistics.median(cli_ms)}


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


def summarize(name: str, result: dict[str, Any]) -> dict[str, float]:
    firsts = [r["first_byte"] for r in result["runs"]]
    p50, p95 = statistics.median(firsts), pct(firsts, 0.95)
    steps = ["worktree_ready", "container_ready", "spawned", "first_byte"]
    breakdown = {s: statistics.median(r.get(s, float("nan")) for r in result["runs"]) for s in steps}
    print(f"{name:6s} cold first byte {result['cold']['first_byte']:8.1f} ms")
    print(f"{name:6s} sequence of {len(firsts)}: p50 {p50:8.1f} ms   p95 {p95:8.1f} ms")
    print(
        f"{name:6s} median breakdown (ms since POST): "
        + ", ".join(f"{s} {v:.1f}" for s, v in breakdown.items())
    )
    return {"p50": p50, "p95": p95, "cold": result["cold"]["first_byte"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=20)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--local-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anyon-bench-") as tmp:
        work = Path(tmp)
        local = summarize("local", measure("local", work, args.files, args.attempts))
        if args.local_only:
            return 0
        cloud_result = measure("cloud", work, args.files, args.attempts)
        cloud = summarize("cloud", cloud_result)
        print(
            f"ratio cloud/local: p50 {cloud['p50'] / local['p50']:.2f}x   "
            f"p95 {cloud['p95'] / local['p95']:.2f}x   "
            f"cold {cloud['cold'] / local['cold']:.2f}x   (seed target: <= 1.10x)"
        )
        if cloud_result["exec"]:
            e = cloud_result["exec"]
            print(
                f"exec of `true` in a running container: ours p50 {e['ours_p50']:.1f} ms, "
                f"docker exec CLI p50 {e['cli_p50']:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
