"""Authorization codes: issued at the end of a flow, redeemed once at ``/token``.

A code is 256 random bits, stored as its SHA-256, alive ``AUTH_OAUTH_CODE_TTL_SECONDS`` (60 at
most, a database constraint too), and bound to everything the token request must repeat:
the client, the exact redirect URI, the PKCE challenge and the resource. Presenting a used
code again means it was intercepted or replayed: the session it became is revoked, so every
token issued from it dies on every replica (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..db import Connection
from .errors import InvalidGrant, InvalidRequest, InvalidTarget
from .flows import Flow

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1
_MAX_CODE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class RedeemedCode:
    """What a code was bound to, for the session it becomes."""

    code_hash: bytes
    flow_id: str
    user_id: str
    resource: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReusedCode:
    """A used code presented again: the session it became (None if none was made)."""

    flow_id: str
    session_id: str | None


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def pkce_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2, S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def issue_code(conn: Connection, flow: Flow, user_id: str, ttl_seconds: int) -> str:
    """A new code for a finished flow, bound to its client, redirect, challenge, resource."""
    code = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    await conn.execute(
        """
        INSERT INTO oauth_codes (code_hash, flow_id, client_id, user_id, redirect_uri,
            code_challenge, resource, scope, created_at, expires_at)
        VALUES ($1, $2, $3, $4::uuid, $5, $6, $7, $8, $9, $10)
        """,
        _hash(code),
        flow.id,
        flow.client_id,
        user_id,
        flow.redirect_uri,
        flow.code_challenge,
        flow.resource,
        list(flow.scopes),
        now,
        now + timedelta(seconds=ttl_seconds),
    )
    return code


async def redeem_code(
    conn: Connection,
    code: str,
    *,
    client_id: str,
    redirect_uri: str | None,
    verifier: str | None,
    resource: str | None,
) -> RedeemedCode | ReusedCode:
    """Check and use a code, within the caller's transaction (the row stays locked until the
    session it becomes is recorded). ``ReusedCode`` for a code used before, which the caller
    must answer by revoking its session; an ``OAuthError`` for any other refusal."""
    if verifier is None or not _VERIFIER.fullmatch(verifier):
        raise InvalidRequest("code_verifier must be 43 to 128 unreserved characters")
    if redirect_uri is None:
        raise InvalidRequest("redirect_uri is required")
    if not code or len(code) > _MAX_CODE_LENGTH:
        raise InvalidGrant("unknown authorization code")
    row = await conn.fetchrow(
        """
        SELECT code_hash, flow_id, client_id, user_id::text AS user_id, redirect_uri,
               code_challenge, resource, scope, expires_at, used_at, session_id
        FROM oauth_codes WHERE code_hash = $1 FOR UPDATE
        """,
        _hash(code),
    )
    if row is None:
        raise InvalidGrant("unknown authorization code")
    if row["client_id"] != client_id:
        raise InvalidGrant("the code was issued to another client")
    if row["used_at"] is not None:
        return ReusedCode(row["flow_id"], row["session_id"])
    if row["expires_at"] <= datetime.now(UTC):
        raise InvalidGrant("the authorization code has expired")
    if row["redirect_uri"] != redirect_uri:
        raise InvalidGrant("redirect_uri is not the one of the authorization request")
    if not hmac.compare_digest(pkce_challenge(verifier), row["code_challenge"]):
        raise InvalidGrant("code_verifier does not match the code_challenge")
    if resource is not None and resource != row["resource"]:
        raise InvalidTarget("resource is not the one the code was issued for")
    await conn.execute("UPDATE oauth_codes SET used_at = now() WHERE code_hash = $1", _hash(code))
    return RedeemedCode(
        row["code_hash"], row["flow_id"], row["user_id"], row["resource"], tuple(row["scope"])
    )


async def record_session(conn: Connection, code_hash: bytes, session_id: str) -> None:
    """Remember which session a code became, for revoking it if the code comes back."""
    await conn.execute(
        "UPDATE oauth_codes SET session_id = $2 WHERE code_hash = $1", code_hash, session_id
    )
