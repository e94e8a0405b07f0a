"""``auth-service client list|show|remove``: the OAuth clients, registered or fetched.

Open registration lets anyone create a client, so an operator needs to see them and remove
one. Removing a client ends its sessions first (the revocation reaches every replica, so its
access tokens stop validating within a sync interval), then deletes it with its codes and
consents. Secrets are never shown: the database holds only their hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .command import CommandError, load_settings, with_database

if TYPE_CHECKING:
    import asyncpg

    from ..oauth.clients import Client
    from .command import Commands


def register(commands: Commands) -> None:
    client = commands.add_parser("client", help="manage OAuth clients").add_subparsers(
        dest="client_command", required=True, metavar="ACTION"
    )
    listing = client.add_parser("list", help="list OAuth clients")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=list_command)
    show = client.add_parser("show", help="show one OAuth client")
    show.add_argument("client_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=show_command)
    remove = client.add_parser("remove", help="remove an OAuth client and end its sessions")
    remove.add_argument("client_id")
    remove.set_defaults(func=remove_command)


def client_as_dict(client: Client) -> dict[str, Any]:
    """What the commands show of a client: everything but the secret's hash."""

    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "client_id": client.client_id,
        "kind": client.kind,
        "client_name": client.client_name,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "created_at": when(client.created_at),
        "last_used_at": when(client.last_used_at),
        "document_expires_at": when(client.document_expires_at),
        "metadata": client.metadata,
    }


def list_command(args: argparse.Namespace) -> int:
    from ..oauth.clients import list_clients

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            clients = await list_clients(conn)
        if args.json:
            print(json.dumps([client_as_dict(c) for c in clients], indent=2))
            return 0
        print(f"{'CLIENT_ID':40} {'KIND':17} {'AUTH':19} {'LAST_USED':20} NAME")
        for c in clients:
            used = c.last_used_at.strftime("%Y-%m-%d %H:%M") if c.last_used_at else "never"
            name = c.client_name or ""
            print(
                f"{c.client_id:40} {c.kind:17} {c.token_endpoint_auth_method:19} {used:20} {name}"
            )
        return 0

    return asyncio.run(with_database(load_settings(), work))


def show_command(args: argparse.Namespace) -> int:
    from ..oauth.clients import get_client

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            client = await get_client(conn, args.client_id)
        if client is None:
            raise CommandError(f"no OAuth client {args.client_id!r}")
        data = client_as_dict(client)
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        for key, value in data.items():
            if key == "metadata":
                value = json.dumps(value, sort_keys=True)
            elif isinstance(value, list):
                value = " ".join(value)
            print(f"{key:27} {'' if value is None else value}")
        return 0

    return asyncio.run(with_database(load_settings(), work))


def remove_command(args: argparse.Namespace) -> int:
    from ..audit import record_event
    from ..oauth.clients import remove_client
    from ..sessions import Lifetimes

    settings = load_settings()

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn, conn.transaction():
            # The client's row locked first: no session can start for it between the count
            # and the removal (a new session's foreign key waits for this lock).
            await conn.execute(
                "SELECT 1 FROM oauth_clients WHERE client_id = $1 FOR UPDATE", args.client_id
            )
            live = await conn.fetchval(
                "SELECT count(*) FROM sessions WHERE client_id = $1 AND revoked_at IS NULL",
                args.client_id,
            )
            removed = await remove_client(conn, args.client_id, Lifetimes.from_settings(settings))
        if not removed:
            raise CommandError(f"no OAuth client {args.client_id!r}")
        await record_event(
            pool,
            "oauth_client_removed",
            "success",
            detail={"client_id": args.client_id, "sessions": live},
        )
        print(f"removed OAuth client {args.client_id}; ended {live} session(s)")
        return 0

    return asyncio.run(with_database(settings, work))
