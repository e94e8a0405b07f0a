"""PostgreSQL: the connection pool, the migrations, and the URL of the configured server or
of the embedded default (embedded.py).

This is the one place that opens connections. Repository functions elsewhere take a
connection (or the pool) and run plain SQL with ``$n`` parameters.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from . import embedded
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
# Waiting for another replica's migrations, or running one, may take longer than the bound
# on a request's query (AUTH_DB_TIMEOUT_SECONDS).
_MIGRATION_TIMEOUT = 300.0


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
    await conn.execute(
        "SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID, timeout=_MIGRATION_TIMEOUT
    )
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
                await conn.execute(migration.sql, timeout=_MIGRATION_TIMEOUT)
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


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured URL, or the embedded server's, held (and released) around the block."""
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    server = await asyncio.to_thread(embedded.embedded_server, settings.data_dir)
    watcher = asyncio.create_task(embedded.watch(server), name="auth-service-embedded-watch")
    try:
        yield server.get_uri()
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
        # Stops the server if no other process uses it; signals that end the process without
        # running exit handlers would otherwise leave it behind.
        await asyncio.to_thread(server.cleanup)


class BoundedPool(asyncpg.Pool):
    """asyncpg's pool, whose ``acquire`` waits at most ``acquire_timeout`` by default.

    asyncpg bounds opening a connection (``timeout``) and a query (``command_timeout``) but
    waits for a free connection forever: with the database stalled, every connection is
    soon held by a query that hangs, and requests would queue behind them without end.
    ``pool.fetch`` and friends acquire through this method too.
    """

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


def _one_line(record: logging.LogRecord) -> bool:
    """asyncpg's pool retries its connection floor during an outage and logs each failure
    with a traceback: keep the line, name the exception, drop the traceback."""
    if record.exc_info and record.exc_info[1] is not None:
        record.msg = f"{record.msg} ({type(record.exc_info[1]).__name__})"
        record.exc_info = None
        record.exc_text = None
    return True


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """Open the pool; a clear ``DatabaseUnavailable`` when the server cannot be reached.

    Connecting, acquiring and each query are bounded by ``AUTH_DB_TIMEOUT_SECONDS``: during
    an outage a request fails within that time (a 503) instead of waiting for the database.
    """
    bound = settings.db_timeout_seconds
    pool_log = logging.getLogger("asyncpg.pool")
    if _one_line not in pool_log.filters:
        pool_log.addFilter(_one_line)
    try:
        pool = await BoundedPool(
            dsn,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            max_queries=50_000,
            max_inactive_connection_lifetime=300.0,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
            acquire_timeout=bound,
            command_timeout=bound,
            timeout=bound,
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as e:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {_describe(e)}") from e
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
