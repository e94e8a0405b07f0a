"""OAuth clients in PostgreSQL: registered ones (RFC 7591) and cached metadata documents.

A client's secret is 256 random bits, shown once at registration and stored as its SHA-256:
a random secret of that size needs no slow hash, and a slow one would cost CPU on every token
request. Removing a client first revokes its sessions (revocation rows and NOTIFY), so the
access tokens it holds stop validating on every replica, then deletes it with its flows,
codes and consents.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..db import Connection
from ..sessions import Lifetimes, revoke_session

ClientKind = Literal["registered", "metadata_document"]
AuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("none", "client_secret_basic", "client_secret_post")


@dataclass(frozen=True, slots=True)
class Client:
    """A client as stored; ``metadata`` is what registration answered (or the document)."""

    client_id: str
    kind: ClientKind
    client_name: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: AuthMethod
    secret_hash: bytes | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    document_expires_at: datetime | None = None

    @property
    def public(self) -> bool:
        """A client without a secret (``none``): PKCE alone binds its codes."""
        return self.token_endpoint_auth_method == "none"

    def secret_matches(self, secret: str) -> bool:
        """Whether ``secret`` is this client's (constant time over the digests)."""
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(hash_secret(secret), self.secret_hash)


def hash_secret(secret: str) -> bytes:
    """What the database holds of a client secret."""
    return hashlib.sha256(secret.encode()).digest()


def _client(row: Any) -> Client:
    return Client(
        client_id=row["client_id"],
        kind=row["kind"],
        client_name=row["client_name"],
        redirect_uris=tuple(row["redirect_uris"]),
        grant_types=tuple(row["grant_types"]),
        token_endpoint_auth_method=row["token_endpoint_auth_method"],
        secret_hash=row["secret_hash"],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        document_expires_at=row["document_expires_at"],
    )


async def insert_client(
    conn: Connection, client: Client, *, created_by_addr: str | None = None
) -> None:
    """Store a newly registered client."""
    await conn.execute(
        """
        INSERT INTO oauth_clients (client_id, kind, client_name, redirect_uris, grant_types,
            token_endpoint_auth_method, secret_hash, metadata, created_by_addr,
            document_expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)
        """,
        client.client_id,
        client.kind,
        client.client_name,
        list(client.redirect_uris),
        list(client.grant_types),
        client.token_endpoint_auth_method,
        client.secret_hash,
        json.dumps(client.metadata),
        created_by_addr,
        client.document_expires_at,
    )


async def upsert_metadata_document_client(conn: Connection, client: Client) -> Client:
    """Store (or refresh) the client a fetched metadata document describes; returns it as
    stored. ``client.document_expires_at`` says until when the copy may be used."""
    if client.kind != "metadata_document" or client.document_expires_at is None:
        raise ValueError("a metadata document client needs document_expires_at")
    row = await conn.fetchrow(
        """
        INSERT INTO oauth_clients (client_id, kind, client_name, redirect_uris, grant_types,
            token_endpoint_auth_method, secret_hash, metadata, document_expires_at)
        VALUES ($1, 'metadata_document', $2, $3, $4, $5, NULL, $6::jsonb, $7)
        ON CONFLICT (client_id) DO UPDATE SET
            client_name = EXCLUDED.client_name, redirect_uris = EXCLUDED.redirect_uris,
            grant_types = EXCLUDED.grant_types,
            token_endpoint_auth_method = EXCLUDED.token_endpoint_auth_method,
            metadata = EXCLUDED.metadata, document_expires_at = EXCLUDED.document_expires_at
        WHERE oauth_clients.kind = 'metadata_document'
        RETURNING client_id, kind, client_name, redirect_uris, grant_types,
            token_endpoint_auth_method, secret_hash, metadata::text AS metadata, created_at,
            last_used_at, document_expires_at
        """,
        client.client_id,
        client.client_name,
        list(client.redirect_uris),
        list(client.grant_types),
        client.token_endpoint_auth_method,
        json.dumps(client.metadata),
        client.document_expires_at,
    )
    if row is None:
        raise ValueError(f"client {client.client_id!r} exists and is not a metadata document")
    return _client(row)


async def get_client(conn: Connection, client_id: str) -> Client | None:
    """The client with this id, or None."""
    if not client_id or len(client_id) > 2000:
        return None
    row = await conn.fetchrow(
        """
        SELECT client_id, kind, client_name, redirect_uris, grant_types,
            token_endpoint_auth_method, secret_hash, metadata::text AS metadata, created_at,
            last_used_at, document_expires_at
        FROM oauth_clients WHERE client_id = $1
        """,
        client_id,
    )
    return _client(row) if row is not None else None


async def list_clients(conn: Connection) -> list[Client]:
    """Every client, oldest first."""
    rows = await conn.fetch(
        """
        SELECT client_id, kind, client_name, redirect_uris, grant_types,
            token_endpoint_auth_method, secret_hash, metadata::text AS metadata, created_at,
            last_used_at, document_expires_at
        FROM oauth_clients ORDER BY created_at, client_id
        """
    )
    return [_client(r) for r in rows]


async def touch_client(conn: Connection, client_id: str) -> None:
    """Note that the client was just used (a code or token issued to it)."""
    await conn.execute(
        "UPDATE oauth_clients SET last_used_at = now() WHERE client_id = $1", client_id
    )


async def remove_client(conn: Connection, client_id: str, lifetimes: Lifetimes) -> bool:
    """Revoke every live session of the client, then delete it; False if there was none."""
    async with conn.transaction():
        exists = await conn.fetchval(
            "SELECT 1 FROM oauth_clients WHERE client_id = $1 FOR UPDATE", client_id
        )
        if exists is None:
            return False
        sessions = await conn.fetch(
            "SELECT id FROM sessions WHERE client_id = $1 AND revoked_at IS NULL", client_id
        )
        for row in sessions:
            await revoke_session(conn, row["id"], "oauth client removed", lifetimes)
        await conn.execute("DELETE FROM oauth_clients WHERE client_id = $1", client_id)
    return True
