"""Our JWT signing keys: generated on first start, kept in PostgreSQL, published as a JWKS.

ES256 (P-256, 128-bit security). The private key leaves the process only into the
``signing_keys`` table, sealed with the key-encryption key (``key_encryption.py``): read access
to the database does not give it away. Every key carries its algorithm, so verification never
lets a token header choose one. The ``kid`` is the key's RFC 7638 thumbprint, and a loaded key
must match its ``kid``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .db import Connection, Executor
from .errors import ConfigurationError
from .key_encryption import KeyRing

SIGNING_ALGORITHM = "ES256"
KEYS_CHANNEL = "auth_keys"  # NOTIFY: the key set changed, reload it
_KEYS_LOCK_ID = 0x6B657973  # "keys": one replica generates the first key


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One of our keys, loaded in memory."""

    kid: str
    algorithm: str
    private_key: ec.EllipticCurvePrivateKey
    public_jwk: dict[str, Any]

    public_key: ec.EllipticCurvePublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived once: verification uses it on every cache miss.
        object.__setattr__(self, "public_key", self.private_key.public_key())


@dataclass(frozen=True, slots=True)
class KeySet:
    """The keys this process signs with and verifies against."""

    signing: SigningKey
    verifying: dict[str, SigningKey]

    @property
    def fingerprint(self) -> tuple[str, frozenset[str]]:
        """What identifies this key set: the signing kid and every verifying kid."""
        return self.signing.kid, frozenset(self.verifying)

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set document."""
        return {"keys": [k.public_jwk for k in self.verifying.values()]}


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK, base64url without padding."""
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return jwt.utils.base64url_encode(digest).decode()


def generate_key() -> tuple[str, str, dict[str, Any]]:
    """A new ES256 key as (kid, private PEM, public JWK)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    kid = _thumbprint(jwk)
    jwk.update({"kid": kid, "alg": SIGNING_ALGORITHM, "use": "sig"})
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return kid, pem, jwk


def _row_name(kid: str) -> str:
    """What a sealed private key is bound to: its table and ``kid``."""
    return f"signing_keys/{kid}"


def _private_pem(row: asyncpg.Record, ring: KeyRing) -> bytes:
    """The row's private key in PEM: opened with the KEK, or (a row written before keys were
    sealed, until the next start seals it) as stored."""
    if row["private_key_sealed"] is not None:
        return ring.unseal(row["private_key_sealed"], _row_name(row["kid"]))
    return str(row["private_pem"]).encode()


def _load(row: asyncpg.Record, ring: KeyRing) -> SigningKey:
    kid = row["kid"]
    private_key = serialization.load_pem_private_key(_private_pem(row, ring), password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"signing key {kid} is not an EC key")
    public_jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(
        private_key.public_key(), as_dict=True
    )
    if _thumbprint(public_jwk) != kid:
        raise ConfigurationError(f"signing key {kid} does not match its kid")
    jwk = row["public_jwk"]
    return SigningKey(
        kid=kid,
        algorithm=row["algorithm"],
        private_key=private_key,
        public_jwk=json.loads(jwk) if isinstance(jwk, str) else jwk,
    )


async def _insert_new_key(conn: Connection, ring: KeyRing) -> str:
    kid, pem, jwk = generate_key()
    await conn.execute(
        """
        INSERT INTO signing_keys (kid, algorithm, private_key_sealed, public_jwk)
        VALUES ($1, $2, $3, $4::jsonb)
        """,
        kid,
        SIGNING_ALGORITHM,
        ring.seal(pem.encode(), _row_name(kid)),
        json.dumps(jwk),
    )
    return kid


async def seal_signing_keys(conn: Connection, ring: KeyRing, *, rewrap: bool = False) -> int:
    """Seal with the current KEK every private key stored in clear (rows from before keys
    were sealed) and, with ``rewrap``, every one sealed with another KEK; returns how many
    rows changed. One transaction: a key that does not open changes nothing."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEYS_LOCK_ID)
        rows = await conn.fetch(
            "SELECT kid, private_pem, private_key_sealed FROM signing_keys ORDER BY kid FOR UPDATE"
        )
        changed = 0
        for row in rows:
            sealed = row["private_key_sealed"]
            if sealed is not None and (not rewrap or ring.is_current(sealed)):
                continue
            await conn.execute(
                """
                UPDATE signing_keys SET private_key_sealed = $2, private_pem = NULL
                WHERE kid = $1
                """,
                row["kid"],
                ring.seal(_private_pem(row, ring), _row_name(row["kid"])),
            )
            changed += 1
        return changed


async def ensure_signing_key(conn: Connection, ring: KeyRing) -> bool:
    """Create the first signing key if there is none usable; True when one was created."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEYS_LOCK_ID)
        active = await conn.fetchval("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL")
        if active:
            return False
        await _insert_new_key(conn, ring)
        return True


async def rotate_signing_key(conn: Connection, ring: KeyRing, verify_for_seconds: int) -> str:
    """Make a new key the one that signs; the old one keeps verifying for
    ``verify_for_seconds`` (the longest lifetime of a token it signed), then leaves the JWKS.
    Every replica is told at commit. Returns the new kid."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEYS_LOCK_ID)
        await conn.execute(
            """
            UPDATE signing_keys
            SET retired_at = now(), expires_at = now() + make_interval(secs => $1)
            WHERE retired_at IS NULL
            """,
            float(verify_for_seconds),
        )
        kid = await _insert_new_key(conn, ring)
        await conn.execute("SELECT pg_notify($1, $2)", KEYS_CHANNEL, kid)
    return kid


async def list_keys(conn: Executor) -> list[dict[str, Any]]:
    """Every key with its state (signing, verifying, expired) and dates, oldest first."""
    rows = await conn.fetch(
        """
        SELECT kid, algorithm, created_at, retired_at, expires_at,
               CASE WHEN retired_at IS NULL THEN 'signing'
                    WHEN expires_at > now() THEN 'verifying'
                    ELSE 'expired' END AS state
        FROM signing_keys ORDER BY created_at, kid
        """
    )
    return [dict(r.items()) for r in rows]


async def load_key_set(conn: Executor, ring: KeyRing) -> KeySet:
    """Every key that still verifies; the newest unretired one signs. A key that does not
    open with ``ring`` is a ``ConfigurationError`` naming it."""
    rows = await conn.fetch(
        """
        SELECT kid, algorithm, private_pem, private_key_sealed,
               public_jwk::text AS public_jwk, retired_at
        FROM signing_keys
        WHERE expires_at IS NULL OR expires_at > now()
        ORDER BY created_at DESC, kid
        """
    )
    keys = [(_load(r, ring), r["retired_at"]) for r in rows]
    signing = next((k for k, retired in keys if retired is None), None)
    if signing is None:
        raise LookupError("no active signing key in the database")
    return KeySet(signing=signing, verifying={k.kid: k for k, _ in keys})
