"""Sessions: refresh tokens with rotation and reuse detection, logout, revocation.

A session is one login. Its refresh tokens form a family: each is used once and replaced by a
new one; presenting a used (retired) token again means it was copied, so the whole session is
revoked. The session id is the ``sid`` claim of every access token issued within it, and a
revoked session id is held in memory by every replica (``RevocationList``), delivered by
PostgreSQL NOTIFY on ``auth_revocations`` and re-read periodically (``sync.py``).

Refresh tokens are 256 bits from ``secrets`` and stored only as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .db import Connection
from .errors import CredentialError, ErrorCode
from .settings import Settings

REVOCATIONS_CHANNEL = "auth_revocations"
_MAX_REFRESH_TOKEN_LENGTH = 256


class RefreshRefused(CredentialError):
    """The refresh token is unknown, expired, retired or of an ended session."""

    code = ErrorCode.INVALID_GRANT

    def __init__(self, description: str, revoked: tuple[str, float] | None = None) -> None:
        super().__init__(description)
        self.revoked = revoked  # (session id, held until) when this refusal revoked a session


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long sessions and their tokens live, in seconds."""

    refresh_idle: int  # a refresh token unused this long expires
    session_absolute: int  # no session outlives this, however active
    revocation: int  # the longest any token of a session can still be valid

    @classmethod
    def from_settings(cls, settings: Settings) -> Lifetimes:
        """Session and refresh-token lifetimes, taken from the settings once."""
        longest_token = max(
            settings.access_token_ttl_seconds,
            settings.session_ttl_seconds,
            settings.oauth_access_token_ttl,
        )
        return cls(
            refresh_idle=settings.refresh_idle_ttl_seconds,
            session_absolute=settings.refresh_absolute_ttl_seconds,
            revocation=longest_token + settings.leeway_seconds,
        )


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """A session and the refresh token that continues it."""

    session_id: str
    user_id: str
    refresh_token: str
    refresh_expires_in: int
    # An OAuth session's binding (oauth/grants.py); None and () for a login.
    resource: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OAuthBinding:
    """What an OAuth session is bound to: the client it was issued to and the resource."""

    client_id: str
    resource: str
    scopes: tuple[str, ...]
    flow_id: str | None = None


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _now() -> datetime:
    return datetime.now(UTC)


async def _new_refresh_token(
    conn: Connection, session_id: str, session_expires: datetime, idle: int
) -> tuple[str, int]:
    token = secrets.token_urlsafe(32)
    expires = min(_now() + timedelta(seconds=idle), session_expires)
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, idle_expires_at) VALUES ($1, $2, $3)",
        _hash(token),
        session_id,
        expires,
    )
    return token, max(0, round((expires - _now()).total_seconds()))


async def start_session(
    conn: Connection,
    user_id: str,
    lifetimes: Lifetimes,
    *,
    absolute: int | None = None,
    oauth: OAuthBinding | None = None,
) -> SessionGrant:
    """A new session for ``user_id`` with its first refresh token; ``oauth`` binds it to a
    client and resource (an OAuth grant), whose refresh tokens only that client may use."""
    session_id = secrets.token_urlsafe(16)
    expires = _now() + timedelta(seconds=absolute or lifetimes.session_absolute)
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO sessions (id, user_id, expires_at, client_id, resource, scope, flow_id)
            VALUES ($1, $2::uuid, $3, $4, $5, $6, $7)
            """,
            session_id,
            user_id,
            expires,
            oauth.client_id if oauth else None,
            oauth.resource if oauth else None,
            list(oauth.scopes) if oauth else None,
            oauth.flow_id if oauth else None,
        )
        token, expires_in = await _new_refresh_token(
            conn, session_id, expires, lifetimes.refresh_idle
        )
    if oauth is None:
        return SessionGrant(session_id, user_id, token, expires_in)
    return SessionGrant(session_id, user_id, token, expires_in, oauth.resource, oauth.scopes)


async def rotate_refresh_token(
    conn: Connection, token: str, lifetimes: Lifetimes, *, client_id: str | None = None
) -> SessionGrant:
    """Exchange a refresh token for a new one of the same session; ``RefreshRefused`` else.

    The row is locked, so of two concurrent exchanges of one token exactly one succeeds; the
    other finds it retired, which is reuse: the whole session is revoked. ``client_id`` is
    the OAuth client presenting it (None: the login API): a token of another client's
    session, or of an OAuth session at the login API, is unknown here.
    """
    if not token or len(token) > _MAX_REFRESH_TOKEN_LENGTH:
        raise RefreshRefused("unknown refresh token")
    async with conn.transaction():
        row = await conn.fetchrow(
            """
            SELECT rt.session_id, rt.idle_expires_at, rt.retired_at,
                   s.user_id::text AS user_id, s.expires_at, s.revoked_at, u.disabled,
                   s.resource, s.scope
            FROM refresh_tokens rt
            JOIN sessions s ON s.id = rt.session_id
            JOIN users u ON u.id = s.user_id
            WHERE rt.token_hash = $1 AND s.client_id IS NOT DISTINCT FROM $2
            FOR UPDATE OF rt, s
            """,
            _hash(token),
            client_id,
        )
        if row is None:
            raise RefreshRefused("unknown refresh token")
        refusal = None
        revoked = None
        now = _now()
        if row["revoked_at"] is not None:
            refusal = "the session has ended"
        elif row["retired_at"] is not None:
            held_until = await revoke_session(
                conn, row["session_id"], "refresh token reuse", lifetimes
            )
            revoked = (str(row["session_id"]), held_until)
            refusal = "refresh token reuse: the session has been revoked"
        elif row["disabled"]:
            refusal = "the account is disabled"
        elif now >= row["expires_at"] or now >= row["idle_expires_at"]:
            refusal = "the refresh token has expired"
        if refusal is None:
            await conn.execute(
                "UPDATE refresh_tokens SET retired_at = now() WHERE token_hash = $1", _hash(token)
            )
            new_token, expires_in = await _new_refresh_token(
                conn, row["session_id"], row["expires_at"], lifetimes.refresh_idle
            )
    # Outside the transaction, so that a revocation for reuse is committed, not rolled back.
    if refusal is not None:
        raise RefreshRefused(refusal, revoked)
    return SessionGrant(
        row["session_id"],
        row["user_id"],
        new_token,
        expires_in,
        row["resource"],
        tuple(row["scope"] or ()),
    )


async def binding_of_refresh_token(conn: Connection, token: str) -> OAuthBinding | None:
    """The OAuth binding of a refresh token's session (None: unknown, or a login's)."""
    if not token or len(token) > _MAX_REFRESH_TOKEN_LENGTH:
        return None
    row = await conn.fetchrow(
        """
        SELECT s.client_id, s.resource, s.scope, s.flow_id FROM refresh_tokens rt
        JOIN sessions s ON s.id = rt.session_id
        WHERE rt.token_hash = $1 AND s.client_id IS NOT NULL
        """,
        _hash(token),
    )
    if row is None:
        return None
    return OAuthBinding(row["client_id"], row["resource"], tuple(row["scope"]), row["flow_id"])


async def session_of_refresh_token(conn: Connection, token: str) -> str | None:
    """The session a refresh token belongs to (retired or not), or None."""
    if not token or len(token) > _MAX_REFRESH_TOKEN_LENGTH:
        return None
    value = await conn.fetchval(
        "SELECT session_id FROM refresh_tokens WHERE token_hash = $1", _hash(token)
    )
    return str(value) if value is not None else None


async def revoke_session(
    conn: Connection, session_id: str, why: str, lifetimes: Lifetimes
) -> float:
    """End a session: its refresh tokens stop working and its access tokens stop validating
    on every replica (NOTIFY at commit). Returns until when (Unix time) the revocation is
    held: the expiry of the longest-lived token the session can have issued."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE sessions SET revoked_at = now(), revoked_why = $2 "
            "WHERE id = $1 AND revoked_at IS NULL",
            session_id,
            why,
        )
        expires = _now() + timedelta(seconds=lifetimes.revocation)
        await conn.execute(
            """
            INSERT INTO revocations (session_id, expires_at) VALUES ($1, $2)
            ON CONFLICT (session_id) DO NOTHING
            """,
            session_id,
            expires,
        )
        await conn.execute(
            "SELECT pg_notify($1, $2)", REVOCATIONS_CHANNEL, f"{session_id} {expires.timestamp()}"
        )
    return expires.timestamp()


async def revoke_user_sessions(
    conn: Connection, username: str, why: str, lifetimes: Lifetimes
) -> int:
    """End every active session of a user (after disabling or a password change)."""
    rows = await conn.fetch(
        """
        SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE u.username = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
        """,
        username,
    )
    for row in rows:
        await revoke_session(conn, row["id"], why, lifetimes)
    return len(rows)


class RevocationList:
    """Revoked session ids in memory, each kept until the tokens it covers have expired."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}  # session id -> Unix time

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, session_id: str, expires_at: float) -> None:
        """Remember a revocation (until ``expires_at``, Unix time)."""
        if expires_at > time.time():
            self._expiry[session_id] = max(expires_at, self._expiry.get(session_id, 0.0))

    def prune(self) -> int:
        """Forget revocations whose tokens have all expired; how many were dropped."""
        now = time.time()
        stale = [sid for sid, expiry in self._expiry.items() if expiry <= now]
        for sid in stale:
            del self._expiry[sid]
        return len(stale)


async def load_revocations(
    conn: Connection, revocations: RevocationList, since: datetime | None
) -> datetime | None:
    """Add revocations made since ``since`` (all unexpired ones when None); returns the newest
    ``revoked_at`` seen, for the next incremental read."""
    rows = await conn.fetch(
        """
        SELECT session_id, revoked_at, expires_at FROM revocations
        WHERE expires_at > now() AND ($1::timestamptz IS NULL OR revoked_at >= $1)
        """,
        since,
    )
    newest = since
    for row in rows:
        revocations.add(row["session_id"], row["expires_at"].timestamp())
        if newest is None or row["revoked_at"] > newest:
            newest = row["revoked_at"]
    return newest
