"""``auth-service keys list|rotate|rewrap|generate-kek``: the signing keys and their sealing."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING

from .command import load_settings, with_database

if TYPE_CHECKING:
    import asyncpg

    from .command import Commands


def register(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    listing = keys.add_parser("list", help="list signing keys with their state and dates")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_command)
    keys.add_parser(
        "rotate", help="make a new signing key; the old one keeps verifying its tokens"
    ).set_defaults(func=rotate_command)
    keys.add_parser(
        "rewrap",
        help="re-encrypt every private key with AUTH_KEY_ENCRYPTION_KEY (after a KEK rotation)",
    ).set_defaults(func=rewrap_command)
    keys.add_parser(
        "generate-kek", help="print a new random key-encryption key (base64url, 32 bytes)"
    ).set_defaults(func=generate_kek_command)


def list_command(args: argparse.Namespace) -> int:
    from ..keys import list_keys

    async def work(pool: asyncpg.Pool) -> int:
        rows = await list_keys(pool)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
            return 0
        print(f"{'KID':44} {'ALG':6} {'STATE':10} {'CREATED':26} {'RETIRED':26} VERIFIES UNTIL")
        for row in rows:
            dates = [
                row[k].isoformat(timespec="seconds") if row[k] else "-"
                for k in ("created_at", "retired_at", "expires_at")
            ]
            print(
                f"{row['kid']:44} {row['algorithm']:6} {row['state']:10} "
                f"{dates[0]:26} {dates[1]:26} {dates[2]}"
            )
        return 0

    return asyncio.run(with_database(load_settings(), work))


def rotate_command(args: argparse.Namespace) -> int:
    from ..audit import record_event
    from ..key_encryption import load_key_ring
    from ..keys import rotate_signing_key
    from ..sessions import Lifetimes

    settings = load_settings()
    ring = load_key_ring(settings)

    async def work(pool: asyncpg.Pool) -> int:
        # The old key verifies as long as the longest-lived token it may have signed.
        verify_for = Lifetimes.from_settings(settings).revocation
        async with pool.acquire() as conn:
            kid = await rotate_signing_key(conn, ring, verify_for)
        await record_event(pool, "keys_rotate", "success", detail={"kid": kid})
        print(f"new signing key {kid}; the previous one verifies for {verify_for} s more")
        return 0

    return asyncio.run(with_database(settings, work))


def rewrap_command(args: argparse.Namespace) -> int:
    from ..audit import record_event
    from ..key_encryption import load_key_ring
    from ..keys import seal_signing_keys
    from ..service_secrets import seal_service_secrets

    settings = load_settings()
    ring = load_key_ring(settings)

    async def work(pool: asyncpg.Pool) -> int:
        # One transaction: a secret that does not open leaves every row as it was.
        async with pool.acquire() as conn, conn.transaction():
            keys = await seal_signing_keys(conn, ring, rewrap=True)
            secrets = await seal_service_secrets(conn, ring, rewrap=True)
        label = ring.current.label
        await record_event(
            pool,
            "keys_rewrap",
            "success",
            detail={"key_encryption_key": label, "signing_keys": keys, "secrets": secrets},
        )
        print(
            f"re-encrypted {keys} signing key(s) and {secrets} secret(s) with key-encryption "
            f"key {label}; every row is now sealed with it"
        )
        return 0

    return asyncio.run(with_database(settings, work))


def generate_kek_command(args: argparse.Namespace) -> int:
    from ..key_encryption import new_key_text

    print(new_key_text())
    return 0
