"""``anyon audit``: answer "who merged this?" (or created, started, stopped, pushed, deleted) from the trail.

Reads the JSON-lines files of ``<data_dir>/audit`` (cloud mode) and prints the matching entries, oldest
first; ``--object`` matches an attempt, task, process or project id (an attempt's lines also carry its
task and project, so a task id finds the merges of all its attempts).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from anyon.commands.common import add_settings_arguments, load_or_exit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("audit", help="show who created, started, merged... what (cloud mode)")
    parser.add_argument("--object", metavar="ID", help="an attempt, task, process or project id")
    parser.add_argument("--user", metavar="LOGIN", help="only this account (login or id)")
    parser.add_argument("--action", help="only actions containing this text, e.g. merge")
    parser.add_argument("--days", type=int, metavar="N", help="only the last N days")
    parser.add_argument("--json", action="store_true", help="print the raw JSON lines")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from anyon.services.team.audit import AuditLog, matches
    from anyon.services.team.service import audit_dir

    config = load_or_exit(args)
    if config is None:
        return 1
    if args.days is not None and args.days < 0:
        print("anyon audit: --days must be 0 or more", file=sys.stderr)
        return 2
    since = None if args.days is None else dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.days)
    log = AuditLog(audit_dir(config), config.retention.audit_days)
    found = 0
    for entry in log.entries(since):
        if not matches(entry, obj=args.object, user=args.user, action=args.action):
            continue
        found += 1
        if args.json:
            print(json.dumps(entry, sort_keys=True))
        else:
            keys = ("project_id", "task_id", "attempt_id", "process_id")
            where = " ".join(f"{k}={entry[k]}" for k in keys if entry.get(k))
            print(
                f"{entry.get('ts')}  {entry.get('user')}  {entry.get('action')}  "
                f"{entry.get('outcome')}  {where}"
            )
    if not found:
        print("no matching audit entries", file=sys.stderr)
    return 0
