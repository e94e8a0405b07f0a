"""Signing in and out, for the JSON API and the browser forms alike: one login attempt
(throttle, verify, record) and the end of a session (revoke, record). Plain arguments, no
HTTP: both kinds of route call these functions, neither imports the other.

What is recorded of the submitted name (L7 of issue 16): people type passwords into the
username field. The name goes into logs and audit rows only when it is a user's; any other
name is recorded as ``name_hash``, the first 12 hex digits of an HMAC of the lower-cased name
under a key derived from the service's shared secret. Repeated attempts with one name share
it, so a spray stays visible, and it cannot be reversed by whoever reads only the logs. The
throttle keys an unknown name by the same HMAC (longer), never by the name itself.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from . import audit, throttle, users
from .devices import device_id, issue_device_token
from .errors import LoginOverloaded, LoginThrottled
from .metrics import LOGIN_ATTEMPTS
from .passwords import PasswordWorkers
from .sessions import Lifetimes, RevocationList, revoke_session
from .types import User

log = logging.getLogger(__name__)

_NAMES_LABEL = b"auth-service login names v1"
_PURGE_EVERY = 256  # attempts of one process between two clean-ups of the throttle table
_attempts = itertools.count(1)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A correct password for an enabled account, and a fresh device cookie for its browser."""

    user: User
    device_token: str


def name_hash(secret: bytes, name: str) -> str:
    """A keyed digest of a submitted name that is no user's (hex, 64 digits)."""
    key = hmac.new(secret, _NAMES_LABEL, hashlib.sha256).digest()
    return hmac.new(key, name.lower().encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


async def attempt_login(
    pool: asyncpg.Pool,
    passwords: PasswordWorkers,
    policy: throttle.ThrottlePolicy,
    secret: bytes,
    username: str,
    password: str,
    *,
    client_ip: str | None,
    device_token: str | None,
) -> SignedIn | None:
    """Check ``password`` for ``username``: None when it is wrong (or the user unknown or
    disabled); ``LoginThrottled`` while the throttle refuses; ``LoginOverloaded`` when the
    password-hashing queue cannot take the attempt.

    Counted, logged and audited. Unknown users are verified against a dummy hash: the same
    work, time, counting and answer as a wrong password, so names cannot be probed. A name
    no user can have (control characters, ...) is never looked up: only its client's
    address counts it. A full queue refuses before anything else (no database work, no
    throttle count: no password was tried); an attempt that times out in the queue keeps
    the failure the throttle counted for it.
    """
    try:
        passwords.check_room()
    except LoginOverloaded as overloaded:
        note_overload("login refused: hashing queue full", overloaded)
        raise
    valid_name = users.is_valid_username(username)
    user = await users.find_user(pool, username) if valid_name else None
    if user is not None:
        account: str | None = user.id
        who: dict[str, Any] = {"user": user.username}
    else:
        digest = name_hash(secret, username)
        account = f"~{digest}" if valid_name else None
        who = {"name_hash": digest[:12]}
    device = device_id(secret, device_token, user.username) if user else None
    counters = throttle.counters_for(policy, account=account, address=client_ip, device=device)
    async with pool.acquire() as conn:
        admission = await throttle.admit(conn, counters, policy)
    for scope in admission.locked:
        log.info("login throttle engaged", extra={"scope": scope.value, **who})
    if admission.retry_after:
        # Refused before any hashing: as fast for an unknown name as for a known one.
        LOGIN_ATTEMPTS.labels("throttled").inc()
        log.info("login throttled", extra={**who, "retry_after": admission.retry_after})
        await _audit(pool, "throttled", who, client_ip, retry_after=admission.retry_after)
        raise LoginThrottled(admission.retry_after)
    try:
        matches = await passwords.verify(user.password_hash if user else None, password)
    except LoginOverloaded as overloaded:
        note_overload("login refused: no hashing thread in time", overloaded)
        raise
    ok = user is not None and matches and not user.disabled
    outcome = "success" if ok else "failure"
    LOGIN_ATTEMPTS.labels(outcome).inc()
    log.info("login " + ("succeeded" if ok else "failed"), extra={**who, "device": bool(device)})
    if ok:
        await throttle.give_back(pool, counters)
    await _audit(pool, outcome, who, client_ip)
    if next(_attempts) % _PURGE_EVERY == 0:
        await throttle.purge_stale(pool, policy)
    if not ok or user is None:
        return None
    return SignedIn(user, issue_device_token(secret, user.username))


class _OverloadLog:
    """One WARNING a second at most for refused logins, with the count since the last one:
    a flood must not flood the logs as well."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._next = 0.0
        self._count = 0

    def refused(self, message: str, overloaded: LoginOverloaded) -> None:
        self._count += 1
        now = time.monotonic()
        if now < self._next:
            return
        extra = {"error_type": "service_unavailable", "retry_after": overloaded.retry_after}
        log.warning(message, extra={**extra, "refused": self._count})
        self._count, self._next = 0, now + self._seconds


_overloads = _OverloadLog(1.0)


def note_overload(message: str, overloaded: LoginOverloaded) -> None:
    """Log a refused login (one line a second at most): for the refusals made before the
    framework (``routes/overload.py``) as for those made here."""
    _overloads.refused(message, overloaded)


async def _audit(
    pool: asyncpg.Pool, outcome: str, who: dict[str, Any], client_ip: str | None, **detail: Any
) -> None:
    await audit.record_event(
        pool,
        "login",
        outcome,
        username=who.get("user"),
        client_addr=client_ip,
        detail={**detail, **({} if "user" in who else who)},
    )


async def end_session(
    pool: asyncpg.Pool,
    revocations: RevocationList,
    lifetimes: Lifetimes,
    session_id: str,
    username: str | None,
    *,
    client_ip: str | None,
) -> None:
    """Log out: revoke the session, at once on this replica (the others hear of it through
    NOTIFY), and audit it."""
    async with pool.acquire() as conn:
        held_until = await revoke_session(conn, session_id, "logout", lifetimes)
    revocations.add(session_id, held_until)
    await audit.record_event(
        pool,
        "logout",
        "success",
        username=username,
        client_addr=client_ip,
        detail={"session": session_id[:8]},
    )
