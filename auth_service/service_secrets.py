"""Secrets every replica shares (the CSRF key), in ``service_secrets``, sealed with the KEK.

Made by whichever replica asks first, from ``secrets``; stored only sealed with the
key-encryption key (``key_encryption.py``), bound to the secret's name.
"""

from __future__ import annotations

import secrets

import asyncpg

from .db import Connection
from .key_encryption import KeyRing

_SECRET_BYTES = 32
_LOCK_ID = 0x73656372  # "secr": sealing and rewrapping run one replica at a time


def _row_name(name: str) -> str:
    return f"service_secrets/{name}"


def _value(row: asyncpg.Record, ring: KeyRing) -> bytes:
    """The secret: opened with the KEK, or (a row from before secrets were sealed) as stored."""
    if row["value_sealed"] is not None:
        return ring.unseal(row["value_sealed"], _row_name(row["name"]))
    return bytes(row["value"])


async def load_service_secret(conn: Connection, ring: KeyRing, name: str) -> bytes:
    """The shared secret ``name``, created (sealed) by whichever replica asks first."""
    await conn.execute(
        """
        INSERT INTO service_secrets (name, value_sealed) VALUES ($1, $2)
        ON CONFLICT (name) DO NOTHING
        """,
        name,
        ring.seal(secrets.token_bytes(_SECRET_BYTES), _row_name(name)),
    )
    row = await conn.fetchrow(
        "SELECT name, value, value_sealed FROM service_secrets WHERE name = $1", name
    )
    assert row is not None
    return _value(row, ring)


async def seal_service_secrets(conn: Connection, ring: KeyRing, *, rewrap: bool = False) -> int:
    """Seal with the current KEK every secret stored in clear and, with ``rewrap``, every one
    sealed with another KEK; returns how many rows changed. One transaction."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        rows = await conn.fetch(
            "SELECT name, value, value_sealed FROM service_secrets ORDER BY name FOR UPDATE"
        )
        changed = 0
        for row in rows:
            sealed = row["value_sealed"]
            if sealed is not None and (not rewrap or ring.is_current(sealed)):
                continue
            await conn.execute(
                "UPDATE service_secrets SET value_sealed = $2, value = NULL WHERE name = $1",
                row["name"],
                ring.seal(_value(row, ring), _row_name(row["name"])),
            )
            changed += 1
        return changed
