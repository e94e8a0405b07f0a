"""Pending authorization requests: from a valid ``GET /authorize`` to the code or refusal.

A flow is bound to the browser that started it: a random value in the flow cookie, whose
SHA-256 the row keeps. Resuming the flow after sign-in and posting the consent need that
cookie, so a flow id leaked from one browser cannot be finished in another (an attacker could
otherwise approve a victim's request with the attacker's own account, handing the victim's
client a code for the attacker's identity). The flow id is also the correlation id of every
log line and audit row from ``/authorize`` to the first token.

One browser may run a few flows at once (an editor that connects to two MCP servers opens two
sign-in tabs together): the cookie holds the secrets of its newest flows, dot-separated, and a
flow is this browser's when one of them is its secret. Every secret is made here, never taken
from a client.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..db import Connection
from .authorization import AuthorizationRequest

FLOW_COOKIE = "auth_oauth_flow"
_MAX_ID_LENGTH = 64
MAX_BROWSER_FLOWS = 4  # flows one browser can have pending at once: the newest are kept
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Flow:
    """A flow as stored."""

    id: str
    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str
    resource: str
    scopes: tuple[str, ...]
    prompt: tuple[str, ...]
    user_id: str | None  # who was shown the consent page
    expires_at: datetime
    browser_hash: bytes  # SHA-256 of the secret in the cookie of the browser that started it


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def browser_secrets(cookie: str | None) -> list[str]:
    """The flow secrets in a flow cookie's value, newest first (malformed parts ignored)."""
    if not cookie:
        return []
    parts = cookie.split(".", MAX_BROWSER_FLOWS)[:MAX_BROWSER_FLOWS]
    return [part for part in parts if _SECRET.fullmatch(part)]


def cookie_adding(browser_secret: str, cookie: str | None) -> str:
    """The flow cookie's value with a new flow's secret first and the newest others after it."""
    return ".".join([browser_secret, *browser_secrets(cookie)][:MAX_BROWSER_FLOWS])


def cookie_removing(flow: Flow, cookie: str | None) -> str:
    """The flow cookie's value without ``flow``'s secret (empty: no flow left)."""
    return ".".join(
        secret
        for secret in browser_secrets(cookie)
        if not hmac.compare_digest(_hash(secret), flow.browser_hash)
    )


def new_flow_id() -> str:
    """128 random bits: the flow's id and correlation id."""
    return secrets.token_urlsafe(16)


async def create_flow(
    conn: Connection, request: AuthorizationRequest, ttl_seconds: int, flow_id: str | None = None
) -> tuple[Flow, str]:
    """Store a flow; returns it and the value for the browser's flow cookie."""
    flow_id = flow_id or new_flow_id()
    browser_secret = secrets.token_urlsafe(32)
    browser_hash = _hash(browser_secret)
    expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    await conn.execute(
        """
        INSERT INTO oauth_flows (id, browser_hash, client_id, redirect_uri, state,
            code_challenge, resource, scope, prompt, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        """,
        flow_id,
        browser_hash,
        request.client_id,
        request.redirect_uri,
        request.state,
        request.code_challenge,
        request.resource.url,
        list(request.scopes),
        " ".join(request.prompt) or None,
        expires,
    )
    flow = Flow(
        flow_id,
        request.client_id,
        request.redirect_uri,
        request.state,
        request.code_challenge,
        request.resource.url,
        request.scopes,
        request.prompt,
        None,
        expires,
        browser_hash,
    )
    return flow, browser_secret


async def load_flow(conn: Connection, flow_id: str, cookie: str | None) -> Flow | None:
    """The unfinished, unexpired flow with this id, if the browser whose flow cookie has this
    value started it."""
    candidates = [_hash(secret) for secret in browser_secrets(cookie)]
    if not flow_id or len(flow_id) > _MAX_ID_LENGTH or not candidates:
        return None
    row = await conn.fetchrow(
        """
        SELECT id, browser_hash, client_id, redirect_uri, state, code_challenge, resource,
               scope, prompt, user_id::text AS user_id, expires_at
        FROM oauth_flows
        WHERE id = $1 AND finished_at IS NULL AND expires_at > now()
        """,
        flow_id,
    )
    if row is None:
        return None
    # Every candidate is compared, so the time taken does not say which one matched.
    matches = [hmac.compare_digest(row["browser_hash"], candidate) for candidate in candidates]
    if not any(matches):
        return None
    return Flow(
        row["id"],
        row["client_id"],
        row["redirect_uri"],
        row["state"],
        row["code_challenge"],
        row["resource"],
        tuple(row["scope"]),
        tuple((row["prompt"] or "").split()),
        row["user_id"],
        row["expires_at"],
        row["browser_hash"],
    )


async def show_consent_to(conn: Connection, flow_id: str, user_id: str) -> None:
    """Remember who was shown the consent page: only they may answer it."""
    await conn.execute("UPDATE oauth_flows SET user_id = $2::uuid WHERE id = $1", flow_id, user_id)


async def finish_flow(conn: Connection, flow_id: str) -> bool:
    """Mark the flow done; False if it was already (a double submit: one answer only)."""
    done = await conn.fetchval(
        "UPDATE oauth_flows SET finished_at = now() "
        "WHERE id = $1 AND finished_at IS NULL RETURNING id",
        flow_id,
    )
    return done is not None


async def purge_stale(conn: Connection) -> int:
    """Delete what no request can use any more: flows and codes a day past their expiry
    (a reused code is still recognised, and revoked, for that day), and registered clients
    that were never used within a day of registering (what open registration leaves
    behind). Returns how many rows went."""
    deleted = 0
    for statement in (
        "DELETE FROM oauth_flows WHERE expires_at < now() - interval '1 day'",
        "DELETE FROM oauth_codes WHERE expires_at < now() - interval '1 day'",
        "DELETE FROM oauth_clients WHERE kind = 'registered' AND last_used_at IS NULL "
        "AND created_at < now() - interval '1 day'",
        "DELETE FROM oauth_clients WHERE kind = 'metadata_document' "
        "AND coalesce(last_used_at, created_at) < now() - interval '30 days'",
    ):
        result = await conn.execute(statement)
        deleted += int(result.rsplit(" ", 1)[-1])
    return deleted
