"""Keeping a replica's memory current: revocations and signing keys from PostgreSQL.

A dedicated connection LISTENs on ``auth_revocations`` and ``auth_keys``, so a logout or a
key rotation on any replica reaches this one within milliseconds. As a safety net, every
``interval`` seconds the revocations made since the last read and the key set are read again;
after a lost connection, everything unexpired is read once more, so a replica that was cut off
catches up as soon as it is back. Nothing here is on the request path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta

import asyncpg

from .errors import ConfigurationError
from .key_encryption import KeyRing
from .keys import KEYS_CHANNEL, KeySet, load_key_set
from .sessions import REVOCATIONS_CHANNEL, RevocationList, load_revocations

log = logging.getLogger(__name__)

# Incremental reads look back this far, for transactions that committed after a later one.
_OVERLAP = timedelta(seconds=30)
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class StateSync:
    """The background task that feeds ``revocations`` and calls ``on_keys`` with new key sets."""

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        revocations: RevocationList,
        keys: KeySet,
        ring: KeyRing,
        on_keys: Callable[[KeySet], None],
        interval: float,
        query_timeout: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._revocations = revocations
        self._fingerprint = keys.fingerprint
        self._ring = ring
        self._unreadable: str | None = None  # the last key-set error logged
        self._on_keys = on_keys
        self._interval = interval
        self._query_timeout = query_timeout
        self._since: datetime | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    async def start(self) -> None:
        """Read every unexpired revocation, then follow changes in the background."""
        async with self._pool.acquire() as conn:
            self._since = await load_revocations(conn, self._revocations, None)
        self._task = asyncio.create_task(self._run(), name="auth-service-sync")

    async def stop(self) -> None:
        """Stop following changes."""
        if self._task is not None:
            self._task.cancel()
            # The loop logs its own failures; stopping must not fail because of one.
            with suppress(asyncio.CancelledError, Exception):
                await self._task

    def _on_revocation(self, conn: object, pid: int, channel: str, payload: object) -> None:
        session_id, _, expires = str(payload).partition(" ")
        try:
            self._revocations.add(session_id, float(expires))
        except ValueError:
            log.error("malformed revocation notice ignored")

    def _on_key_change(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._wake.set()  # the loop reloads the key set at once

    async def _run(self) -> None:
        delay = 0.5
        failing = False
        while True:
            listener: asyncpg.Connection | None = None
            try:
                # Bounded, like the pool's queries: a connection whose server stopped
                # answering (a network that drops packets silently) is given up on and
                # replaced, rather than waited on for ever while revocations go unheard.
                listener = await asyncpg.connect(
                    self._dsn,
                    timeout=self._query_timeout,
                    command_timeout=self._query_timeout,
                    server_settings={"application_name": "auth-service-listener"},
                )
                await listener.add_listener(REVOCATIONS_CHANNEL, self._on_revocation)
                await listener.add_listener(KEYS_CHANNEL, self._on_key_change)
                # Whatever happened while we were not listening: read it all again.
                await self.refresh(full=True)
                self.connected = True
                if failing:
                    log.warning("database connection restored; revocations and keys caught up")
                failing, delay = False, 0.5
                while True:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._interval)
                    except TimeoutError:
                        pass
                    self._wake.clear()
                    await listener.execute("SELECT 1")  # notices a dead connection
                    await self.refresh()
            except Exception as e:
                self.connected = False
                if not failing:
                    level = logging.WARNING if isinstance(e, _DB_ERRORS) else logging.ERROR
                    log.log(
                        level,
                        "lost the database connection for revocations and keys; retrying",
                        extra={"error": type(e).__name__},
                        exc_info=level == logging.ERROR,
                    )
                failing = True
            finally:
                if listener is not None and not listener.is_closed():
                    listener.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def refresh(self, *, full: bool = False) -> None:
        """Read new revocations (all unexpired ones when ``full``) and the key set."""
        async with self._pool.acquire() as conn:
            since = None if full or self._since is None else self._since - _OVERLAP
            newest = await load_revocations(conn, self._revocations, since)
            if newest is not None and (self._since is None or newest > self._since):
                self._since = newest
            try:
                keys: KeySet | None = await load_key_set(conn, self._ring)
            except ConfigurationError as e:  # a key sealed with a KEK we lack, say
                keys = None
                if str(e) != self._unreadable:  # once, not every interval
                    self._unreadable = str(e)
                    log.error("new signing keys cannot be read; the keys in memory stay: %s", e)
        self._revocations.prune()
        if keys is not None and keys.fingerprint != self._fingerprint:
            self._fingerprint = keys.fingerprint
            self._on_keys(keys)
            log.info("signing keys changed", extra={"signing_kid": keys.signing.kid})
