"""The ``auth-service`` command.

Errors a user can make (a duplicate user, an unknown name, an empty password, a database
that cannot be reached) print one line to stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import ValidationError

from . import diagnose, status
from .errors import AuthServiceError, InvalidPassword
from .settings import Settings


class CommandError(AuthServiceError):
    """A command cannot run as asked."""


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"AUTH_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in e.errors()
        )
        raise CommandError(f"invalid configuration: {problems}") from e


def _read_new_password(from_stdin: bool, username: str) -> str:
    """A new password, checked against the password policy."""
    from .passwords import check_password_acceptable

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


async def _with_db(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    from .db import open_database

    async with open_database(settings) as pool:
        return await work(pool)


# -- commands ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from .key_encryption import load_key_ring

    settings = _settings()
    if settings.config is not None:
        from .config import load_config

        load_config(settings.config)  # a bad file stops here, with one clear line
    # Likewise a missing key-encryption key; the embedded database's is made here, once,
    # before any worker starts.
    load_key_ring(settings)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metric values here so that one scrape sees them all.
        metrics_dir = tempfile.mkdtemp(prefix="auth-service-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        _run_uvicorn(settings, host, port, args.workers)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "auth_service.app:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=settings.access_log,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    from .db import apply_migrations, open_database

    settings = _settings()

    async def run() -> int:
        async with open_database(settings, migrate=False) as pool, pool.acquire() as conn:
            applied = await apply_migrations(conn)
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
        return 0

    return asyncio.run(run())


def cmd_user_add(args: argparse.Namespace) -> int:
    from . import users
    from .audit import record_event
    from .passwords import hash_password

    settings = _settings()
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

    return asyncio.run(_with_db(settings, work))


def cmd_user_show(args: argparse.Namespace) -> int:
    from . import users

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

    return asyncio.run(_with_db(_settings(), work))


def cmd_user_list(args: argparse.Namespace) -> int:
    from . import users

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

    return asyncio.run(_with_db(_settings(), work))


def _change_user_and_end_sessions(
    args: argparse.Namespace,
    event: str,
    why: str,
    change: Callable[[Any], Awaitable[None]],
    done: str,
) -> int:
    """Apply ``change`` to a user and end all of the user's sessions, in one transaction."""
    from .audit import record_event
    from .sessions import Lifetimes, revoke_user_sessions

    settings = _settings()

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

    return asyncio.run(_with_db(settings, work))


def cmd_user_disable(args: argparse.Namespace) -> int:
    from . import users

    async def disable(conn: Any) -> None:
        await users.set_disabled(conn, args.name, True)

    return _change_user_and_end_sessions(
        args, "user_disable", "user disabled", disable, f"disabled user {args.name}"
    )


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from . import users
    from .passwords import hash_password

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


def cmd_user_unlock(args: argparse.Namespace) -> int:
    from . import throttle, users
    from .audit import record_event

    async def work(pool: asyncpg.Pool) -> int:
        user = await users.get_user(pool, args.name)  # an unknown name is an error
        cleared = await throttle.unlock(pool, user.id)
        await record_event(pool, "user_unlock", "success", username=args.name)
        print(f"unlocked {args.name}" if cleared else f"{args.name} was not locked")
        return 0

    return asyncio.run(_with_db(_settings(), work))


def cmd_keys_list(args: argparse.Namespace) -> int:
    from .keys import list_keys

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

    return asyncio.run(_with_db(_settings(), work))


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from .audit import record_event
    from .key_encryption import load_key_ring
    from .keys import rotate_signing_key
    from .sessions import Lifetimes

    settings = _settings()
    ring = load_key_ring(settings)

    async def work(pool: asyncpg.Pool) -> int:
        # The old key verifies as long as the longest-lived token it may have signed.
        verify_for = Lifetimes.from_settings(settings).revocation
        async with pool.acquire() as conn:
            kid = await rotate_signing_key(conn, ring, verify_for)
        await record_event(pool, "keys_rotate", "success", detail={"kid": kid})
        print(f"new signing key {kid}; the previous one verifies for {verify_for} s more")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_keys_rewrap(args: argparse.Namespace) -> int:
    from .audit import record_event
    from .key_encryption import load_key_ring
    from .keys import seal_signing_keys
    from .service_secrets import seal_service_secrets

    settings = _settings()
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

    return asyncio.run(_with_db(settings, work))


def cmd_keys_generate_kek(args: argparse.Namespace) -> int:
    from .key_encryption import new_key_text

    print(new_key_text())
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import load_config

    path = Path(args.file) if args.file else _settings().config
    if path is None:
        raise CommandError("no file given and AUTH_CONFIG is not set")
    config = load_config(path)
    print(f"{path}: valid; {len(config.issuers)} issuer(s), {len(config.rules)} rule(s)")
    for issuer in config.issuers:
        print(
            f"issuer {issuer.issuer}  audience={issuer.audience}  "
            f"username={issuer.username_claim}  groups={issuer.groups_claim}"
        )
    if config.rules:
        print("rules, in evaluation order (the first match decides):")
    for number, rule in enumerate(config.rules, 1):
        conditions = [
            f"host={rule.host}" if rule.host else "",
            f"path={rule.path}" + ("" if rule.case_sensitive else " (any case)"),
            f"methods={','.join(rule.methods)}" if rule.methods else "",
            f"groups={','.join(rule.groups)}" if rule.groups else "",
            f"scopes={','.join(rule.scopes)}" if rule.scopes else "",
        ]
        print(f"{number:3}. {rule.id:24} {rule.allow:14} {' '.join(c for c in conditions if c)}")
    print("otherwise: authenticated")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import list_events, parse_since

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

    return asyncio.run(_with_db(_settings(), work))


# -- parser -----------------------------------------------------------------------------------


def _positive(text: str) -> int:
    """A whole number of at least 1, or a usage error (not a database error for -1)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auth-service",
        description="Authentication gate for reverse proxies. Configured by AUTH_* variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to listen on (default AUTH_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default AUTH_PORT or 8080)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(
        func=cmd_migrate
    )

    user = sub.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    add = user.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--group", action="append", default=[], help="add to this group (repeatable)")
    add.set_defaults(func=cmd_user_add)
    show = user.add_parser("show", help="show one user")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON (includes password_hash)")
    show.set_defaults(func=cmd_user_show)
    listing = user.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_user_list)
    disable = user.add_parser("disable", help="disable a user")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_user_disable)
    unlock = user.add_parser("unlock", help="clear a user's failed logins and lock")
    unlock.add_argument("name")
    unlock.set_defaults(func=cmd_user_unlock)
    passwd = user.add_parser("passwd", help="change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=cmd_user_passwd)

    audit = sub.add_parser("audit", help="list audit events (logins, logouts, changes)")
    audit.add_argument("--user", help="only this user's events")
    audit.add_argument("--since", help="e.g. 30m, 1h, 7d, or an ISO 8601 date")
    audit.add_argument(
        "--limit", type=_positive, default=1000, metavar="N", help="newest N events (default 1000)"
    )
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit)

    check = sub.add_parser("check-config", help="validate a configuration file, list its rules")
    check.add_argument("file", nargs="?", help="the TOML file (default: AUTH_CONFIG)")
    check.set_defaults(func=cmd_check_config)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    keys_list = keys.add_parser("list", help="list signing keys with their state and dates")
    keys_list.add_argument("--json", action="store_true")
    keys_list.set_defaults(func=cmd_keys_list)
    keys.add_parser(
        "rotate", help="make a new signing key; the old one keeps verifying its tokens"
    ).set_defaults(func=cmd_keys_rotate)
    keys.add_parser(
        "rewrap",
        help="re-encrypt every private key with AUTH_KEY_ENCRYPTION_KEY (after a KEK rotation)",
    ).set_defaults(func=cmd_keys_rewrap)
    keys.add_parser(
        "generate-kek", help="print a new random key-encryption key (base64url, 32 bytes)"
    ).set_defaults(func=cmd_keys_generate_kek)
    diagnose.add_parser(sub)
    status.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .logs import configure_logging

    if args.command != "serve":
        configure_logging("WARNING", "text")
    try:
        result: Any = args.func(args)
    except AuthServiceError as e:
        print(f"auth-service: error: {e}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as e:
        print(f"auth-service: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
