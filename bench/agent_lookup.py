"""What choosing an agent's binary costs at its start: the PATH lookup where the agent runs, and reading
its output for known failures.

Run:  python bench/agent_lookup.py [--runs 30] [--image anyon-test-runner:latest]

* **host lookup**: ``command -v`` through the host runner (local mode, every agent start);
* **container lookup**: the same through an exec in a running attempt container (cloud mode, the first
  agent start of an attempt; later starts reuse the path found);
* **failure reading**: ``failures.diagnose`` over an ordinary 1 KiB output line (every stderr and non-JSON
  line of an agent goes through it).

Prints medians and p95 in milliseconds (microseconds for the reading). Needs the Docker Engine and the
image for the container part; without them it says so and prints the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

from anyon.config.model import DockerSettings
from anyon.services.executions.launch import find_program
from anyon.services.normalizer.failures import diagnose
from anyon.services.runners.host import HostRunner


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


def show(what: str, times: list[float], scale: float = 1000.0, unit: str = "ms") -> None:
    ordered = sorted(times)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(f"{what}: median {statistics.median(times) * scale:.1f} {unit}, p95 {p95 * scale:.1f} {unit}")


async def main(runs: int, image: str) -> None:
    tmp = tempfile.mkdtemp(prefix="anyon-bench-lookup-")
    host = HostRunner()
    show("host lookup", await timed(runs, lambda: find_program(host, "git", tmp, "bench")))
    line = "y" * 1023
    show("failure reading, 1 KiB line", [_reading(line) for _ in range(runs * 100)], 1e6, "µs")
    try:
        from anyon.services.runners.docker import DockerRunner

        user = f"{os.getuid()}:{os.getgid()}"
        runner = DockerRunner(DockerSettings(image=image, user=user), "bench-lookup", f"{tmp}/secrets")
        worktree, git_dir = f"{tmp}/wt", f"{tmp}/git"
        os.makedirs(worktree)
        os.makedirs(git_dir)
        await runner.ensure_container("bench-lookup-1", worktree, git_dir)
    except Exception as exc:
        print(f"container lookup: skipped ({type(exc).__name__}: {exc})")
        return
    try:
        lookup = await timed(runs, lambda: find_program(runner, "sh", worktree, "bench-lookup-1"))
        show("container lookup", lookup)
    finally:
        await runner.remove_container("bench-lookup-1")
        await runner.close()


def _reading(line: str) -> float:
    started = time.perf_counter()
    diagnose("CLAUDE_CODE", line)
    return time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--image", default=os.environ.get("ANYON_TEST_IMAGE", "anyon-test-runner:latest"))
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.image))
