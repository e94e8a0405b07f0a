"""The key-encryption key (KEK): our private key material is stored sealed with it.

Read access to the database (a backup, a read-only role, a leaked dump) must not be enough to
sign tokens. So the ES256 private keys and the CSRF key are stored encrypted with AES-256-GCM
under a key that is not in the database: ``AUTH_KEY_ENCRYPTION_KEY``, or the file named by
``AUTH_KEY_ENCRYPTION_KEY_FILE``. With the embedded database and neither set, the first start
generates a file in the data folder (0600, beside the database files, never inside them);
with ``AUTH_DATABASE_URL`` a KEK must be configured, because every replica needs the same one.

A sealed value is ``version (1) | KEK id (8) | nonce (12) | ciphertext and tag``. The KEK id is
a hash of the key: it names the key without revealing it, so a value sealed with another key
gets a clear error rather than a failed tag. The associated data is the version, the KEK id
and the row the value belongs to (``signing_keys/<kid>``), so a value copied into another row
does not open.

Rotation: with the new key as ``AUTH_KEY_ENCRYPTION_KEY`` and the old one as
``AUTH_KEY_ENCRYPTION_KEY_PREVIOUS`` (or ``..._PREVIOUS_FILE``), values sealed with either
open and new ones are sealed with the new one; ``auth-service keys rewrap`` then seals every
row with the new key, after which the previous one can go.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from .errors import ConfigurationError, SealedSecretUnreadable
from .settings import Settings

DATA_DIR_KEY_FILE = "key-encryption-key"
_VERSION = b"\x01"
_ID_LENGTH = 8
_NONCE_LENGTH = 12
_HEADER_LENGTH = len(_VERSION) + _ID_LENGTH
_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class KeyEncryptionKey:
    """One AES-256 key and its id."""

    id: bytes
    aead: AESGCM

    @classmethod
    def from_bytes(cls, key: bytes) -> KeyEncryptionKey:
        """The KEK of 32 raw bytes."""
        if len(key) != _KEY_BYTES:
            raise ValueError("a key-encryption key is 32 bytes")
        key_id = hashlib.sha256(b"auth-service key-encryption key id\x00" + key).digest()
        return cls(key_id[:_ID_LENGTH], AESGCM(key))

    @property
    def label(self) -> str:
        """The id as text, for messages: safe to show, it reveals nothing of the key."""
        return self.id.hex()


class KeyRing:
    """The current KEK, which seals, and during a rotation the previous one, which still opens."""

    def __init__(self, current: KeyEncryptionKey, previous: KeyEncryptionKey | None = None):
        self.current = current
        self.previous = previous if previous is None or previous.id != current.id else None
        self._by_id = {k.id: k for k in (current, self.previous) if k is not None}

    def seal(self, plaintext: bytes, row: str) -> bytes:
        """``plaintext`` encrypted with the current KEK and bound to ``row``."""
        header = _VERSION + self.current.id
        nonce = secrets.token_bytes(_NONCE_LENGTH)
        return header + nonce + self.current.aead.encrypt(nonce, plaintext, _aad(header, row))

    def unseal(self, sealed: bytes, row: str) -> bytes:
        """The plaintext of a value sealed for ``row``; ``SealedSecretUnreadable`` when no KEK
        of this ring sealed it, or it was altered or moved from another row."""
        sealed = bytes(sealed)
        key = self._by_id.get(sealed[len(_VERSION) : _HEADER_LENGTH])
        if key is None or not sealed.startswith(_VERSION):
            raise SealedSecretUnreadable(row, sealed_with(sealed))
        header = sealed[:_HEADER_LENGTH]
        nonce = sealed[_HEADER_LENGTH : _HEADER_LENGTH + _NONCE_LENGTH]
        try:
            return key.aead.decrypt(
                nonce, sealed[_HEADER_LENGTH + _NONCE_LENGTH :], _aad(header, row)
            )
        except InvalidTag:
            raise SealedSecretUnreadable(row, sealed_with(sealed)) from None

    def is_current(self, sealed: bytes) -> bool:
        """Whether ``sealed`` was sealed with the current KEK (a rewrap leaves it alone)."""
        return bytes(sealed[:_HEADER_LENGTH]) == _VERSION + self.current.id


def sealed_with(sealed: bytes) -> str:
    """The id of the KEK that sealed a value, as text."""
    if not sealed.startswith(_VERSION) or len(sealed) < _HEADER_LENGTH:
        return "(unknown format)"
    return bytes(sealed[len(_VERSION) : _HEADER_LENGTH]).hex()


def _aad(header: bytes, row: str) -> bytes:
    return header + b"\x00" + row.encode()


def new_key_text() -> str:
    """A fresh KEK as the settings take it: 32 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).rstrip(b"=").decode()


def parse_key_text(text: str, setting: str) -> KeyEncryptionKey:
    """A KEK written as base64 or base64url (padding optional, surrounding space ignored).
    The message of a refusal names the setting, never the value."""
    compact = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _KEY_BYTES or not compact.isascii():
        raise ConfigurationError(
            f"{setting}: not a key-encryption key (32 bytes in base64; "
            "`auth-service keys generate-kek` makes one)"
        )
    return KeyEncryptionKey.from_bytes(raw)


def load_key_ring(settings: Settings) -> KeyRing:
    """The KEKs the settings name; for the embedded database, the data folder's own file,
    created on first use. ``ConfigurationError`` with one clear line otherwise."""
    current = _configured(
        settings.key_encryption_key, settings.key_encryption_key_file, "AUTH_KEY_ENCRYPTION_KEY"
    )
    if current is None:
        if settings.database_url is not None:
            raise ConfigurationError(
                "AUTH_DATABASE_URL is set but no key-encryption key is: set "
                "AUTH_KEY_ENCRYPTION_KEY or AUTH_KEY_ENCRYPTION_KEY_FILE, the same for every "
                "replica (`auth-service keys generate-kek` makes one)"
            )
        current = _data_dir_key(settings.data_dir)
    previous = _configured(
        settings.key_encryption_key_previous,
        settings.key_encryption_key_previous_file,
        "AUTH_KEY_ENCRYPTION_KEY_PREVIOUS",
    )
    return KeyRing(current, previous)


def _configured(
    value: SecretStr | None, file: Path | None, setting: str
) -> KeyEncryptionKey | None:
    if value is not None and file is not None:
        raise ConfigurationError(f"set {setting} or {setting}_FILE, not both")
    if value is not None:
        return parse_key_text(value.get_secret_value(), setting)
    if file is not None:
        return parse_key_text(_read(file, f"{setting}_FILE"), f"{setting}_FILE")
    return None


def _read(path: Path, setting: str) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ConfigurationError(f"{setting}: cannot read {path}: {reason}") from e


def _data_dir_key(data_dir: Path) -> KeyEncryptionKey:
    """The embedded database's KEK: ``<data folder>/key-encryption-key``, made once.

    Written to a temporary file and linked into place, so that processes starting together
    on one data folder agree on one key and none reads a half-written file.
    """
    folder = data_dir.expanduser().resolve()
    path = folder / DATA_DIR_KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{DATA_DIR_KEY_FILE}.{secrets.token_hex(8)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as out:
                out.write(new_key_text() + "\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            temporary.unlink(missing_ok=True)
    return parse_key_text(_read(path, str(path)), str(path))
