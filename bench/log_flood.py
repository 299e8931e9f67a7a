"""Log-flood benchmark: an agent printing far more than the log cap, and what the server keeps afterwards.

Run:  python bench/log_flood.py [--mb 100] [--settle 10] [--followers 1] [--reopen 1] [--log-cap 10m]
                                [--pythonmalloc malloc|""]

Starts a real server (``python -m anyon serve`` in a subprocess, everything under a temporary directory),
creates a project and an attempt whose coding agent (a ``base_command_override``) prints ``--mb`` MB of
100-byte lines as fast as it can, optionally followed live by ``--followers`` raw-logs and as many
normalized-logs WebSocket clients, and (``--reopen``) both streams opened once more after the end, as
the UI does when the attempt is viewed. Prints the server's RSS before the attempt, at its peak (sampled from
/proc every 50 ms), when the agent has finished and ``--settle`` seconds later; the database size (with
its WAL) before and after; and the bytes stored for the process. Targets (issue 13): stored bytes at
most the cap plus the markers, RSS after within +30 MB of before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_fanout import Sampler, ok, rss_kib
from stream_fanout import start_server as fanout_server

ROOT = Path(__file__).resolve().parent.parent

FLOODER = """\
import sys
sys.stdin.read()
total = {mb} * 1024 * 1024
line = "x" * 89
written = 0
out = sys.stdout
i = 0
while written < total:
    block = "".join(f"{{i + k:09d}} {{line}}\\n" for k in range(10000))
    i += 10000
    out.write(block)
    written += len(block)
out.write('{{"type":"assistant","message":{{"content":[{{"type":"text","text":"flooded"}}]}}}}\\n')
out.write("LAST LINE OF THE FLOOD\\n")
out.flush()
"""


def start_server(tmp: Path, log_cap: str, pythonmalloc: str) -> tuple[subprocess.Popen[bytes], str]:
    """The stream_fanout server with the log cap and the allocator under test (empty: the defaults)."""
    extra: dict[str, str | None] = {"PYTHONMALLOC": pythonmalloc or None}
    if log_cap:
        extra["ANYON_EXECUTIONS__LOG_CAP_BYTES"] = log_cap
    return fanout_server(tmp, extra)


def db_bytes(tmp: Path) -> int:
    return sum(p.stat().st_size for p in (tmp / "data").glob("anyon.db*") if p.is_file())


async def follow(url: str, out: dict[str, int]) -> None:
    async with connect(url, max_size=None, open_timeout=30) as ws:
        async for raw in ws:
            out["bytes"] = out.get("bytes", 0) + len(raw)
            if json.loads(raw) == {"finished": True}:
                return


async def followers(ws_base: str, pid: str, count: int) -> list[dict[str, int]]:
    results: list[dict[str, int]] = [{} for _ in range(2 * count)]
    urls = [f"{ws_base}/api/execution-processes/{pid}/raw-logs/ws"] * count
    urls += [f"{ws_base}/api/execution-processes/{pid}/normalized-logs/ws"] * count
    await asyncio.gather(*(follow(u, r) for u, r in zip(urls, results, strict=True)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait after the agent ended")
    parser.add_argument("--followers", type=int, default=1, help="raw + normalized WebSocket clients each")
    parser.add_argument("--log-cap", default="", help="executions.log_cap_bytes (default: the server's)")
    parser.add_argument(
        "--pythonmalloc",
        default="malloc",
        help="PYTHONMALLOC of the server, as deploy/systemd/anyon.service sets it ('' = CPython's pymalloc)",
    )
    parser.add_argument(
        "--reopen", type=int, default=1, help="1: open both streams again once the process ended (0: no)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anyon-flood-") as tmpdir:
        tmp = Path(tmpdir)
        proc, base = start_server(tmp, args.log_cap, args.pythonmalloc)
        try:
            script = tmp / "flood.py"
            script.write_text(FLOODER.format(mb=args.mb))
            with httpx.Client(base_url=base, timeout=60) as c:
                override = f"{sys.executable} {script}"
                profiles = {
                    "executors": {
                        "CLAUDE_CODE": {"DEFAULT": {"CLAUDE_CODE": {"base_command_override": override}}}
                    }
                }
                ok(c, "PUT", "/api/profiles", json=profiles)
                body = {"name": "flood", "git_repo_path": str(tmp / "repo"), "use_existing_repo": False}
                project = ok(c, "POST", "/api/projects", json=body)
                task = ok(c, "POST", "/api/tasks", json={"project_id": project["id"], "title": "flood"})  # type: ignore[index]
                time.sleep(1.0)
                rss_before, db_before = rss_kib(proc.pid), db_bytes(tmp)
                sampler = Sampler(proc.pid)
                sampler.start()
                started = time.monotonic()
                attempt = ok(
                    c,
                    "POST",
                    "/api/task-attempts",
                    json={
                        "task_id": task["id"],  # type: ignore[index]
                        "executor_profile_id": {"executor": "CLAUDE_CODE"},
                        "base_branch": "main",
                    },
                )
                aid = attempt["id"]  # type: ignore[index]
                pid = ""
                while not pid:
                    procs = ok(c, "GET", f"/api/execution-processes?task_attempt_id={aid}")
                    pid = str(procs[0]["id"]) if procs else ""  # type: ignore[index]
                    time.sleep(0.01)
                ws_base = base.replace("http://", "ws://")
                got = asyncio.run(followers(ws_base, pid, args.followers)) if args.followers else []
                while True:
                    procs = ok(c, "GET", f"/api/execution-processes?task_attempt_id={aid}")
                    if all(p["status"] != "running" for p in procs):  # type: ignore[union-attr,index]
                        break
                    time.sleep(0.1)
                elapsed = time.monotonic() - started
                rss_done = rss_kib(proc.pid)
                if args.reopen:  # the UI opening the finished attempt: both logs replayed from the store
                    reopened = asyncio.run(followers(ws_base, pid, 1))
                time.sleep(args.settle)
                sampler.stop.set()
                sampler.join()
                rss_after, db_after = rss_kib(proc.pid), db_bytes(tmp)
                raw = c.get(f"/api/execution-processes/{pid}").json()
                status = raw["data"]["status"] if raw.get("success") else raw
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        stored = stored_bytes(tmp / "data" / "anyon.db", pid) if pid else -1
    print(f"server allocator: PYTHONMALLOC={args.pythonmalloc or '(unset: pymalloc)'}")
    print(f"agent output: {args.mb} MB of 100-byte lines; process {status}; {elapsed:.1f} s to the end")
    print(f"stored for the process: {stored / 1024**2:.2f} MB ({stored} bytes)")
    for i, r in enumerate(got):
        kind = "raw" if i < args.followers else "normalized"
        print(f"  live {kind} follower received {r.get('bytes', 0) / 1024**2:.2f} MB of frames")
    if args.reopen:
        raw_mb, norm_mb = (r.get("bytes", 0) / 1024**2 for r in reopened)
        print(f"  reopened after the end: raw {raw_mb:.2f} MB, normalized {norm_mb:.2f} MB of frames")
    print(f"database (with WAL): {db_before / 1024**2:.1f} MB before, {db_after / 1024**2:.1f} MB after")
    print(
        f"server RSS: {rss_before / 1024:.1f} MB before, {sampler.peak / 1024:.1f} MB peak, "
        f"{rss_done / 1024:.1f} MB when the agent ended, {rss_after / 1024:.1f} MB {args.settle:.0f} s after "
        f"that{' and the reopened streams' if args.reopen else ''} "
        f"(+{(rss_after - rss_before) / 1024:.1f} MB)"
    )
    return 0


def stored_bytes(db: Path, pid: str) -> int:
    """Read after the server stopped, straight from the SQLite file (uuid stored as 32 hex digits)."""
    import sqlite3
    import uuid

    if not db.exists():
        return -1
    with sqlite3.connect(db) as conn:
        for key in (uuid.UUID(pid).hex, pid):
            row = conn.execute(
                "SELECT SUM(byte_size) FROM execution_process_logs WHERE execution_id = ?", (key,)
            ).fetchone()
            if row and row[0]:
                return int(row[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
