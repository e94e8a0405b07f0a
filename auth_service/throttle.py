"""Login throttling, shared by every replica through PostgreSQL.

Failures are counted per account (the submitted name, whether or not it exists, so that the
answer reveals nothing) and per client address, in windows of ``window`` seconds. Reaching the
limit locks that key for ``base_lockout`` seconds, doubled at each further lockout (exponential
back-off) up to ``max_lockout``; a lock always ends, so an account's owner is never locked out
for good. A successful login clears the account's count. An operator can clear it at once
(``auth-service user unlock NAME``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .db import Connection, Executor
from .settings import Settings


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Limits and durations, in failures and seconds."""

    account_failures: int
    address_failures: int
    window: int
    base_lockout: int
    max_lockout: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        return cls(
            account_failures=settings.throttle_account_failures,
            address_failures=settings.throttle_address_failures,
            window=settings.throttle_window_seconds,
            base_lockout=settings.throttle_lockout_seconds,
            max_lockout=settings.throttle_max_lockout_seconds,
        )


def account_key(username: str) -> str:
    return "user:" + username.lower()


def address_key(address: str | None) -> str | None:
    return "addr:" + address if address else None


async def retry_after(db: Executor, keys: list[str | None]) -> int:
    """Seconds until every one of ``keys`` may try again (0: now)."""
    wanted = [k for k in keys if k]
    seconds = await db.fetchval(
        """
        SELECT extract(epoch FROM max(locked_until) - now())
        FROM login_throttle WHERE key = ANY($1::text[]) AND locked_until > now()
        """,
        wanted,
    )
    return math.ceil(seconds) if seconds else 0


async def record_failure(
    conn: Connection, key: str | None, limit: int, policy: ThrottlePolicy
) -> None:
    """Count a failure for ``key``; lock it when the window's count reaches ``limit``."""
    if not key:
        return
    await conn.execute(
        """
        INSERT INTO login_throttle AS t (key, failures, window_start) VALUES ($1, 1, now())
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                            THEN 1 ELSE t.failures + 1 END,
            window_start = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                                THEN now() ELSE t.window_start END,
            -- a lockout that ended long ago no longer counts towards the back-off
            lockouts = CASE WHEN t.locked_until < now() - make_interval(secs => $2 * 4)
                            THEN 0 ELSE t.lockouts END
        """,
        key,
        float(policy.window),
    )
    await conn.execute(
        """
        UPDATE login_throttle SET
            locked_until = now() + make_interval(secs => least($3, $2 * power(2, lockouts))),
            lockouts = lockouts + 1,
            failures = 0,
            window_start = now()
        WHERE key = $1 AND failures >= $4
        """,
        key,
        float(policy.base_lockout),
        float(policy.max_lockout),
        limit,
    )


async def record_success(db: Executor, username: str) -> None:
    """A correct password: the account starts afresh (the address keeps its count)."""
    await db.execute("DELETE FROM login_throttle WHERE key = $1", account_key(username))


async def unlock(db: Executor, username: str) -> bool:
    """Clear an account's failures and lock; True when there was something to clear."""
    status = await db.execute("DELETE FROM login_throttle WHERE key = $1", account_key(username))
    return not status.endswith(" 0")
