"""Median wall time of ``anyon config validate`` (a fresh interpreter each run, imports included).

It runs in systemd's ExecStartPre, so start-up time is the figure that matters. Target: under 400 ms.
Usage: python bench/config_cli.py [--runs N] [-- extra validate arguments]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("extra", nargs="*", help="extra arguments for `anyon config validate`")
    args = parser.parse_args()
    command = [sys.executable, "-m", "anyon", "config", "validate", *args.extra]
    subprocess.run(command, check=False, capture_output=True)  # warm the page cache and bytecode
    times, cpu = [], []
    for _ in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, check=False, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
        if done.returncode not in (0, 2):
            print(done.stderr.decode(), file=sys.stderr)
            return 1
    baseline = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append((time.perf_counter() - start) * 1000)
    print(
        f"anyon config validate: median {statistics.median(times):.0f} ms over {args.runs} runs "
        f"(min {min(times):.0f}, max {max(times):.0f}; CPU time median {statistics.median(cpu):.0f} ms); "
        f"bare interpreter median "
        f"{statistics.median(baseline):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
