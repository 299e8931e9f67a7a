"""REST latency on loopback: p50/p99 of two reads the UI polls, with 1,000 tasks seeded.

A real server (uvicorn on 127.0.0.1 in a thread of this process), SQLite by default or PostgreSQL with
``--database-url``; one client, sequential requests over one keep-alive connection.

    python bench/api_latency.py [--tasks 1000] [--requests 1000] [--database-url postgresql://…]
                                [--no-read-cache]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anyon.harness.config import make_config  # noqa: E402
from anyon.harness.live import LiveServer, live_server  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(server: LiveServer, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        response = server.get(path)
        out.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.text
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--no-read-cache", action="store_true", help="database.read_cache = false: every request queries"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anyon-bench-") as tmp:
        database: dict[str, object] = {"url": args.database_url} if args.database_url else {}
        if args.no_read_cache:
            database["read_cache"] = False
        overrides = {"database": database} if database else {}
        with live_server(make_config(Path(tmp), **overrides)) as server:
            project = server.ok(
                "POST",
                "/api/projects",
                json={"name": "bench", "git_repo_path": str(Path(tmp) / "repo"), "use_existing_repo": False},
            )
            t = time.perf_counter()
            tasks = [
                server.ok("POST", "/api/tasks", json={"project_id": project["id"], "title": f"task {i}"})
                for i in range(args.tasks)
            ]
            print(f"seeded {len(tasks)} tasks in {time.perf_counter() - t:.1f} s")
            task_id = tasks[len(tasks) // 2]["id"]
            for name, path in [
                ("GET /api/projects/{id}", f"/api/projects/{project['id']}"),
                ("GET /api/task-attempts?task_id=", f"/api/task-attempts?task_id={task_id}"),
                ("GET /api/tasks?project_id= (1,000 tasks)", f"/api/tasks?project_id={project['id']}"),
            ]:
                n = args.requests if "tasks?" not in path else max(20, args.requests // 20)
                timed(server, path, 20)  # warm-up
                values = timed(server, path, n)
                p50, p99 = statistics.median(values), pct(values, 0.99)
                print(f"{name:45s} n={n:5d}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
