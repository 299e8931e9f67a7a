"""Cost of authenticating a request with a user token (cloud mode with accounts): prints figures.

    python bench/accounts_auth.py --users 1000 --rounds 2000

A real SQLite database with ``--users`` accounts (one token each), then ``AccountService.authenticate``
for random users' tokens (the work the middleware does per request, WebSocket and SSE stream), a wrong
token, and ``live_token_ids`` for 100 open streams (the revocation watch's query). The keyed hash makes
the lookup one indexed query, so the figure should not grow with the number of users.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from anyon.services.db.database import Database
from anyon.services.team.accounts import AccountService


def _time(fn: object, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = Database.from_url(f"sqlite:///{Path(tmp) / 'bench.db'}")
        database.migrate()
        accounts = AccountService(database, secrets.token_bytes(32))
        tokens = []
        for n in range(args.users):
            accounts.add_user(f"user{n}")
            tokens.append(accounts.issue_token(f"user{n}"))
        good = _time(lambda: accounts.authenticate(random.choice(tokens).secret), args.rounds)
        bad = _time(lambda: accounts.authenticate("anyon_u_" + secrets.token_urlsafe(32)), args.rounds)
        ids = {t.token_id for t in random.sample(tokens, min(100, len(tokens)))}
        watch = _time(lambda: accounts.live_token_ids(ids), max(1, args.rounds // 10))
        database.close()
    for name, samples in (("valid user token", good), ("wrong token", bad), ("watch, 100 streams", watch)):
        ordered = sorted(samples)
        p95 = ordered[int(len(ordered) * 0.95) - 1]
        print(f"{name:<20} users={args.users:<6} p50={statistics.median(samples):8.1f} µs  p95={p95:8.1f} µs")


if __name__ == "__main__":
    main()
