"""``anyon user add|list|disable|enable|token|share``: the accounts of a cloud server shared by a team.

Works on the server's database and data directory (the same settings as ``anyon serve``), so it runs on
the VM as the service user while the server is up; changes take effect at the server's next request (and
within ``auth.revocation_check_seconds`` on open streams). A token secret is printed once and never
stored (only its keyed hash is); local mode has no accounts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from anyon.commands.common import add_settings_arguments, load_or_exit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("user", help="manage the user accounts of a cloud server")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="create an account and print its first API token (once)")
    add.add_argument("login")
    add.add_argument("--admin", action="store_true", help="sees and may change every project")
    add.add_argument("--no-token", action="store_true", help="do not issue a token now")

    listing = actions.add_parser("list", help="list the accounts")
    listing.add_argument("--json", action="store_true")

    for name, what in (("disable", "refuse every token and session of"), ("enable", "re-enable")):
        sub = actions.add_parser(name, help=f"{what} an account (at once, open streams included)")
        sub.add_argument("login")

    token = actions.add_parser("token", help="issue (default), list or revoke a user's API tokens")
    token.add_argument("login", nargs="?", help="the account (to issue or list)")
    token.add_argument("--name", default="default", help="a label for the new token")
    token.add_argument("--list", action="store_true", help="list the account's tokens (never secrets)")
    token.add_argument("--revoke", metavar="TOKEN_ID", help="revoke a token by its id")

    share = actions.add_parser("share", help="make an account a member of a project (private projects)")
    share.add_argument("login")
    share.add_argument("project_id")
    share.add_argument("--remove", action="store_true", help="remove the membership instead")

    for sub in actions.choices.values():
        add_settings_arguments(sub)
        sub.set_defaults(func=run)


def _print_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def run(args: argparse.Namespace) -> int:
    from anyon.services.db.database import Database
    from anyon.services.errors import ServiceError
    from anyon.services.team.accounts import AccountService, load_key

    config = load_or_exit(args)
    if config is None:
        return 1
    if not config.is_cloud:
        print("anyon user: accounts exist in cloud mode only (local mode is single-user)", file=sys.stderr)
        return 2
    database = Database.from_url(config.database_url, busy_timeout_ms=config.database.busy_timeout_ms)
    try:
        database.migrate()
        accounts = AccountService(database, load_key(config.paths.data_dir))
        return _dispatch(args, accounts)
    except ServiceError as exc:
        print(f"anyon user: {exc.message}", file=sys.stderr)
        return 1
    finally:
        database.close()


def _dispatch(args: argparse.Namespace, accounts: Any) -> int:
    action = args.action
    if action == "add":
        user = accounts.add_user(args.login, admin=args.admin)
        print(f"created user {user['login']} ({'admin' if user['admin'] else 'member'}) id {user['id']}")
        if not args.no_token:
            _print_token(accounts.issue_token(args.login, "default"))
        return 0
    if action == "list":
        users = accounts.list_users()
        if args.json:
            print(json.dumps(users, indent=2))
        else:
            _print_table(users, ("login", "id", "admin", "disabled", "active_tokens", "created_at"))
        return 0
    if action in ("disable", "enable"):
        user = accounts.set_disabled(args.login, action == "disable")
        print(f"user {user['login']} {'disabled' if user['disabled'] else 'enabled'}")
        return 0
    if action == "token":
        if args.revoke:
            accounts.revoke_token(args.revoke)
            print(f"token {args.revoke} revoked")
            return 0
        if not args.login:
            print("anyon user token: give a LOGIN (or --revoke TOKEN_ID)", file=sys.stderr)
            return 2
        if args.list:
            _print_table(accounts.list_tokens(args.login), ("id", "name", "created_at", "revoked_at"))
            return 0
        _print_token(accounts.issue_token(args.login, args.name))
        return 0
    if action == "share":
        accounts.share(args.login, args.project_id, remove=args.remove)
        print(f"{args.login} {'removed from' if args.remove else 'is a member of'} project {args.project_id}")
        return 0
    return 2


def _print_token(issued: Any) -> None:
    # the secret goes to stdout alone on its line, so `anyon user token bob | tail -1` can capture it
    print(f"token id {issued.token_id} (shown once; store it now, it cannot be shown again):")
    print(issued.secret)
