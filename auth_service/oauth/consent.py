"""Consents: what a person allowed a client to do on a resource, remembered and revocable.

A consent covers a request when it names the same user, client and resource and at least the
scopes asked for. Granting again widens it (the union of scopes). Revoking it also ends the
user's sessions with that client on that resource, so the tokens it led to stop working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import Connection
from ..sessions import Lifetimes, revoke_session


@dataclass(frozen=True, slots=True)
class Consent:
    """One remembered consent, with the client's name for the consents page."""

    client_id: str
    client_name: str | None
    resource: str
    scopes: tuple[str, ...]
    granted_at: datetime


async def consent_covers(
    conn: Connection, user_id: str, client_id: str, resource: str, scopes: tuple[str, ...]
) -> bool:
    """Whether the user already allowed this client these scopes on this resource."""
    granted = await conn.fetchval(
        "SELECT scope FROM oauth_consents "
        "WHERE user_id = $1::uuid AND client_id = $2 AND resource = $3",
        user_id,
        client_id,
        resource,
    )
    return granted is not None and set(scopes) <= set(granted)


async def grant_consent(
    conn: Connection, user_id: str, client_id: str, resource: str, scopes: tuple[str, ...]
) -> None:
    """Remember the consent, widening one that exists."""
    await conn.execute(
        """
        INSERT INTO oauth_consents (user_id, client_id, resource, scope)
        VALUES ($1::uuid, $2, $3, $4)
        ON CONFLICT (user_id, client_id, resource) DO UPDATE SET
            scope = ARRAY(SELECT DISTINCT unnest(oauth_consents.scope || EXCLUDED.scope)
                          ORDER BY 1),
            granted_at = now()
        """,
        user_id,
        client_id,
        resource,
        list(scopes),
    )


async def list_consents(conn: Connection, user_id: str) -> list[Consent]:
    """The user's consents, newest first."""
    rows = await conn.fetch(
        """
        SELECT c.client_id, k.client_name, c.resource, c.scope, c.granted_at
        FROM oauth_consents c JOIN oauth_clients k ON k.client_id = c.client_id
        WHERE c.user_id = $1::uuid
        ORDER BY c.granted_at DESC, c.client_id, c.resource
        """,
        user_id,
    )
    return [
        Consent(r["client_id"], r["client_name"], r["resource"], tuple(r["scope"]), r["granted_at"])
        for r in rows
    ]


async def revoke_consent(
    conn: Connection, user_id: str, client_id: str, resource: str, lifetimes: Lifetimes
) -> bool:
    """Forget the consent and end the user's sessions with the client on the resource."""
    async with conn.transaction():
        deleted = await conn.fetchval(
            "DELETE FROM oauth_consents "
            "WHERE user_id = $1::uuid AND client_id = $2 AND resource = $3 RETURNING 1",
            user_id,
            client_id,
            resource,
        )
        if deleted is None:
            return False
        sessions = await conn.fetch(
            "SELECT id FROM sessions WHERE user_id = $1::uuid AND client_id = $2 "
            "AND resource = $3 AND revoked_at IS NULL",
            user_id,
            client_id,
            resource,
        )
        for row in sessions:
            await revoke_session(conn, row["id"], "oauth consent revoked", lifetimes)
    return True
