"""Login throttling, shared by every replica through PostgreSQL.

An attempt is counted *before* its password is hashed, in one transaction that holds the rows
of its counters: of N parallel guesses against a limit of 10, at most 10 are evaluated.
A locked counter refuses the attempt unchanged. Counters, each in windows of ``window``
seconds:

- ``client``: one account from one client address (an IPv6 client by its /64). Reaching
  ``account_failures`` locks that client out of that account only, for ``base_lockout``
  seconds, doubled at each further lockout (back-off) up to ``max_lockout``.
- ``address``: one client address over every account; ``address_failures``, the same locks.
- ``account``: one account from every client without a device cookie, together. Once
  ``account_budget`` failures are spent, it slows rather than locks: one attempt per slot,
  the slots ``base_lockout`` apart, doubling up to ``max_lockout``. An attacker with any
  number of addresses guesses no faster; the owner is slowed, never shut out for good.
- ``device``: one device cookie (``devices.py``), a browser that signed in to this account
  before. It replaces the three above: an attack on the account or from a shared address
  does not stop its holder, and it has its own ``account_failures`` with back-off.

A lock always ends. A lockout stops counting towards the back-off (and an account's budget
returns) once a quiet period of ``4 * window`` follows it. A correct password gives its
reservation back: the client and device counters start afresh, the address and account
counters drop the attempt (so an account under attack stays slowed). ``auth-service user
unlock NAME`` clears every counter of an account at once.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from .db import Connection, Executor
from .settings import Settings


class Scope(StrEnum):
    """What a counter counts; the prefix of its key and the ``scope`` metric label."""

    CLIENT = "client"
    ADDRESS = "address"
    ACCOUNT = "account"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Limits and durations, in failures and seconds."""

    account_failures: int
    address_failures: int
    account_budget: int
    window: int
    base_lockout: int
    max_lockout: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        return cls(
            account_failures=settings.throttle_account_failures,
            address_failures=settings.throttle_address_failures,
            account_budget=settings.throttle_account_budget,
            window=settings.throttle_window_seconds,
            base_lockout=settings.throttle_lockout_seconds,
            max_lockout=settings.throttle_max_lockout_seconds,
        )


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter an attempt is charged to."""

    scope: Scope
    key: str
    account: str | None  # the account it belongs to, for ``unlock``
    limit: int
    slows: bool = False  # once spent: one attempt per slot rather than ``limit`` per lock


@dataclass(frozen=True, slots=True)
class Admission:
    """The throttle's answer to one attempt."""

    retry_after: int  # seconds; 0 when the attempt may go on
    locked: tuple[Scope, ...] = ()  # counters this attempt locked (or slowed)


def address_group(address: str) -> str:
    """The unit an address is counted in: itself, or for IPv6 its /64 (one subscriber's
    usual allocation, so that cycling through it gains nothing)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def counters_for(
    policy: ThrottlePolicy, *, account: str | None, address: str | None, device: str | None
) -> list[Counter]:
    """The counters of one attempt.

    ``account`` names the account tried (None for a name no user can have: only the address
    counts), ``address`` the client, ``device`` the id of a device cookie valid for this
    account (its holder is counted on its own).
    """
    if device is not None:
        return [Counter(Scope.DEVICE, f"device:{device}", account, policy.account_failures)]
    group = address_group(address) if address else None
    found = []
    if account is not None:
        found.append(
            Counter(Scope.ACCOUNT, f"account:{account}", account, policy.account_budget, slows=True)
        )
        if group is not None:
            found.append(
                Counter(Scope.CLIENT, f"client:{account}@{group}", account, policy.account_failures)
            )
    if group is not None:
        found.append(Counter(Scope.ADDRESS, f"address:{group}", None, policy.address_failures))
    return found


async def admit(conn: Connection, counters: list[Counter], policy: ThrottlePolicy) -> Admission:
    """Charge one attempt to ``counters``, or refuse it while any of them is locked.

    Run before the password is checked. Rows are held until the charge is written, so
    concurrent attempts are counted one after the other. Existing rows are taken in key
    order, then the missing ones are added: two attempts share either all their counters
    (one account, one client) or at most one, so no two can wait for each other.
    """
    if not counters:
        return Admission(0)
    counters = sorted(counters, key=lambda c: c.key)
    keys = [c.key for c in counters]
    async with conn.transaction():
        # The counters that exist first: a refused attempt leaves no row behind, so a flood
        # of made-up names from a locked address does not grow the table.
        held, wait = await _hold(conn, keys)
        if wait:
            return Admission(wait)
        if held < len(keys):
            await conn.execute(
                """
                INSERT INTO login_throttle (key, account)
                SELECT * FROM unnest($1::text[], $2::text[])
                ON CONFLICT (key) DO NOTHING
                """,
                keys,
                [c.account for c in counters],
            )
            _, wait = await _hold(conn, keys)  # all of them now; one may have been locked
            if wait:
                return Admission(wait)
        rows = await conn.fetch(
            _CHARGE,
            keys,
            [c.limit for c in counters],
            [c.slows for c in counters],
            float(policy.window),
            float(policy.base_lockout),
            float(policy.max_lockout),
        )
    locked = {row["key"] for row in rows if row["locked"]}
    return Admission(0, tuple(c.scope for c in counters if c.key in locked))


async def _hold(conn: Connection, keys: list[str]) -> tuple[int, int]:
    """Lock the existing rows of ``keys``; (how many there are, seconds until all are free).

    Every row is locked, whatever its state: a filter here would leave the counters that are
    not locked yet open to concurrent charges.
    """
    rows = await conn.fetch(
        """
        SELECT extract(epoch FROM locked_until - now()) AS wait FROM login_throttle
        WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE
        """,
        keys,
    )
    wait = max((row["wait"] for row in rows if row["wait"] is not None), default=0)
    return len(rows), max(1, math.ceil(wait)) if wait > 0 else 0


# One failure more in each counter (a new window when the last one is over); a counter that
# reaches its limit is locked with back-off. A slowing counter that was locked recently has a
# limit of 1: each attempt takes the next slot.
_CHARGE = """
WITH wanted AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::bool[]) AS w(key, lim, slows)
), current AS (
    SELECT t.key,
           CASE WHEN t.window_start < now() - make_interval(secs => $4)
                THEN 1 ELSE t.failures + 1 END AS failures,
           CASE WHEN t.window_start < now() - make_interval(secs => $4)
                THEN now() ELSE t.window_start END AS window_start,
           -- a lockout followed by a quiet period no longer counts towards the back-off
           CASE WHEN t.locked_until < now() - make_interval(secs => $4 * 4)
                THEN 0 ELSE t.lockouts END AS lockouts,
           w.lim, w.slows
    FROM login_throttle t JOIN wanted w USING (key)
), decided AS (
    SELECT *, failures >= CASE WHEN slows AND lockouts > 0 THEN 1 ELSE lim END AS locks
    FROM current
)
UPDATE login_throttle AS t SET
    failures = CASE WHEN d.locks THEN 0 ELSE d.failures END,
    window_start = CASE WHEN d.locks THEN now() ELSE d.window_start END,
    lockouts = d.lockouts + d.locks::int,
    locked_until = CASE WHEN d.locks
                        THEN now() + make_interval(secs => least($6, $5 * power(2, d.lockouts)))
                        ELSE t.locked_until END
FROM decided AS d
WHERE t.key = d.key
RETURNING t.key, d.locks AS locked
"""


async def give_back(pool: asyncpg.Pool, counters: list[Counter]) -> None:
    """A correct password: return the attempt's reservation (see the module docstring).

    The rows are locked first, in key order, as ``admit`` takes them: one statement that
    deletes some and updates others locks them in an order of its own, and two correct logins
    of one account at once then waited for each other until PostgreSQL killed one.
    """
    keys = sorted(c.key for c in counters)
    fresh = [c.key for c in counters if c.scope in (Scope.CLIENT, Scope.DEVICE)]
    shared = [c.key for c in counters if c.scope in (Scope.ACCOUNT, Scope.ADDRESS)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT 1 FROM login_throttle WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE",
            keys,
        )
        await conn.execute(
            """
            WITH gone AS (DELETE FROM login_throttle WHERE key = ANY($1::text[]))
            UPDATE login_throttle SET failures = greatest(failures - 1, 0)
            WHERE key = ANY($2::text[])
            """,
            fresh,
            shared,
        )


async def unlock(db: Executor, account: str) -> bool:
    """Clear every counter of an account; True when there was something to clear."""
    status = await db.execute("DELETE FROM login_throttle WHERE account = $1", account)
    return not status.endswith(" 0")


async def locked_counts(db: Executor) -> dict[Scope, int]:
    """How many counters of each scope are locked (or, for accounts, slowed) right now."""
    rows = await db.fetch(
        """
        SELECT split_part(key, ':', 1) AS scope, count(*) AS locked FROM login_throttle
        WHERE locked_until > now() GROUP BY 1
        """
    )
    found = {row["scope"]: int(row["locked"]) for row in rows}
    return {scope: found.get(scope.value, 0) for scope in Scope}


async def purge_stale(db: Executor, policy: ThrottlePolicy) -> int:
    """Delete counters that no longer hold anything (window and back-off both over), so that
    a flood of made-up names does not grow the table for ever. Returns how many went."""
    status = await db.execute(
        """
        DELETE FROM login_throttle
        WHERE window_start < now() - make_interval(secs => $1 * 4)
          AND (locked_until IS NULL OR locked_until < now() - make_interval(secs => $1 * 4))
        """,
        float(policy.window),
    )
    return int(status.rsplit(" ", 1)[1])
