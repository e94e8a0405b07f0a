"""``auth-service audit``: the audit events (logins, logouts, changes), newest first."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING

from .command import CommandError, load_settings, with_database

if TYPE_CHECKING:
    import asyncpg

    from .command import Commands


def register(commands: Commands) -> None:
    audit = commands.add_parser("audit", help="list audit events (logins, logouts, changes)")
    audit.add_argument("--user", help="only this user's events")
    audit.add_argument("--since", help="e.g. 30m, 1h, 7d, or an ISO 8601 date")
    audit.add_argument(
        "--limit", type=_positive, default=1000, metavar="N", help="newest N events (default 1000)"
    )
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=audit_command)


def _positive(text: str) -> int:
    """A whole number of at least 1, or a usage error (not a database error for -1)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return int(text)


def audit_command(args: argparse.Namespace) -> int:
    from ..audit import list_events, parse_since

    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as e:
        raise CommandError(f"--since: not a duration (30m, 1h, 7d) or a date: {args.since}") from e

    async def work(pool: asyncpg.Pool) -> int:
        rows = await list_events(pool, username=args.user, since=since, limit=args.limit)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
            return 0
        print(
            f"{'TIME':25} {'EVENT':13} {'OUTCOME':8} {'USER':20} {'CLIENT':16} "
            f"{'REQUEST':18} DETAIL"
        )
        for row in rows:
            detail = json.dumps(row["detail"]) if row["detail"] else ""
            print(
                f"{row['occurred_at'].isoformat(timespec='seconds'):25} {row['event']:13} "
                f"{row['outcome']:8} {row['username'] or '-':20} {row['client_addr'] or '-':16} "
                f"{row['request_id'] or '-':18} {detail}"
            )
        return 0

    return asyncio.run(with_database(load_settings(), work))
