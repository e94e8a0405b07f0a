"""``auth-service user add|show|list|disable|unlock|passwd``: the users and their passwords.

Disabling a user or changing a password ends every session of the user in the same
transaction, so that no refresh token outlives the change.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidPassword
from .command import CommandError, load_settings, with_database

if TYPE_CHECKING:
    import asyncpg

    from .command import Commands


def register(commands: Commands) -> None:
    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    add = user.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--group", action="append", default=[], help="add to this group (repeatable)")
    add.set_defaults(func=add_command)
    show = user.add_parser("show", help="show one user")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON (includes password_hash)")
    show.set_defaults(func=show_command)
    listing = user.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_command)
    disable = user.add_parser("disable", help="disable a user")
    disable.add_argument("name")
    disable.set_defaults(func=disable_command)
    unlock = user.add_parser("unlock", help="clear a user's failed logins and lock")
    unlock.add_argument("name")
    unlock.set_defaults(func=unlock_command)
    passwd = user.add_parser("passwd", help="change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=passwd_command)


# -- passwords --------------------------------------------------------------------------------


def _read_new_password(from_stdin: bool, username: str) -> str:
    """A new password, checked against the password policy."""
    from ..passwords import check_password_acceptable

    password = _read_password(from_stdin)
    check_password_acceptable(password)
    if password.lower() == username.lower():
        raise InvalidPassword("the password must not be the user name")
    return password


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.removesuffix("\r")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CommandError("the two passwords differ")
    else:
        raise CommandError("no terminal to ask for the password: use --password-stdin")
    if not password:
        raise InvalidPassword("the password is empty")
    return password


# -- commands ---------------------------------------------------------------------------------


def add_command(args: argparse.Namespace) -> int:
    from .. import users
    from ..audit import record_event
    from ..passwords import hash_password

    settings = load_settings()
    users.check_username(args.name)
    for group in args.group:
        users.check_group(group)
    password_hash = hash_password(_read_new_password(args.password_stdin, args.name))

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            user = await users.add_user(conn, args.name, password_hash, args.group)
        await record_event(
            pool,
            "user_add",
            "success",
            username=user.username,
            detail={"groups": list(user.groups)},
        )
        print(f"added user {user.username} ({user.id})")
        return 0

    return asyncio.run(with_database(settings, work))


def show_command(args: argparse.Namespace) -> int:
    from .. import users

    async def work(pool: asyncpg.Pool) -> int:
        user = await users.get_user(pool, args.name)
        data = users.user_as_dict(user)
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            for key, value in data.items():
                shown = ",".join(value) if isinstance(value, list) else value
                print(f"{key:14} {shown}")
        return 0

    return asyncio.run(with_database(load_settings(), work))


def list_command(args: argparse.Namespace) -> int:
    from .. import users

    async def work(pool: asyncpg.Pool) -> int:
        rows = await users.list_users(pool)
        if args.json:
            print(
                json.dumps(
                    [
                        {k: v for k, v in users.user_as_dict(u).items() if k != "password_hash"}
                        for u in rows
                    ],
                    indent=2,
                )
            )
            return 0
        print(f"{'USERNAME':24} {'STATE':9} GROUPS")
        for user in rows:
            state = "disabled" if user.disabled else "active"
            print(f"{user.username:24} {state:9} {','.join(user.groups)}")
        return 0

    return asyncio.run(with_database(load_settings(), work))


def _change_user_and_end_sessions(
    args: argparse.Namespace,
    event: str,
    why: str,
    change: Callable[[Any], Awaitable[None]],
    done: str,
) -> int:
    """Apply ``change`` to a user and end all of the user's sessions, in one transaction."""
    from ..audit import record_event
    from ..sessions import Lifetimes, revoke_user_sessions

    settings = load_settings()

    async def work(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn, conn.transaction():
            await change(conn)
            ended = await revoke_user_sessions(
                conn, args.name, why, Lifetimes.from_settings(settings)
            )
        await record_event(pool, event, "success", username=args.name)
        await record_event(
            pool,
            "revocation",
            "success",
            username=args.name,
            detail={"reason": why, "sessions": ended},
        )
        print(f"{done}; ended {ended} session(s)")
        return 0

    return asyncio.run(with_database(settings, work))


def disable_command(args: argparse.Namespace) -> int:
    from .. import users

    async def disable(conn: Any) -> None:
        await users.set_disabled(conn, args.name, True)

    return _change_user_and_end_sessions(
        args, "user_disable", "user disabled", disable, f"disabled user {args.name}"
    )


def passwd_command(args: argparse.Namespace) -> int:
    from .. import users
    from ..passwords import hash_password

    password_hash = hash_password(_read_new_password(args.password_stdin, args.name))

    async def change_password(conn: Any) -> None:
        await users.set_password_hash(conn, args.name, password_hash)

    return _change_user_and_end_sessions(
        args,
        "user_passwd",
        "password changed",
        change_password,
        f"changed the password of {args.name}",
    )


def unlock_command(args: argparse.Namespace) -> int:
    from .. import throttle, users
    from ..audit import record_event

    async def work(pool: asyncpg.Pool) -> int:
        user = await users.get_user(pool, args.name)  # an unknown name is an error
        cleared = await throttle.unlock(pool, user.id)
        await record_event(pool, "user_unlock", "success", username=args.name)
        print(f"unlocked {args.name}" if cleared else f"{args.name} was not locked")
        return 0

    return asyncio.run(with_database(load_settings(), work))
