"""CSRF protection for our HTML forms: signed double-submit tokens.

The login page sets a cookie holding a token and puts the same token in a hidden field. A
post is accepted only when both are present, equal, carry our HMAC and are recent. Another
site can make a browser post the form, but can neither read the cookie nor forge the MAC.
The HMAC key is shared by all replicas through the ``service_secrets`` table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from .db import Connection

CSRF_COOKIE = "auth_csrf"
CSRF_MAX_AGE_SECONDS = 3600
_SECRET_NAME = "csrf"


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_csrf_token(key: bytes, now: float | None = None) -> str:
    """A fresh token: random nonce, time of issue, MAC over both."""
    issued = int(now if now is not None else time.time())
    message = f"{secrets.token_urlsafe(16)}.{issued}"
    return f"{message}.{_mac(key, message)}"


def check_csrf_token(
    key: bytes, submitted: str | None, cookie: str | None, now: float | None = None
) -> bool:
    """True when the submitted token equals the cookie's, is ours and is recent."""
    if not submitted or not cookie or len(submitted) > 256:
        return False
    if not hmac.compare_digest(submitted.encode(), cookie.encode()):
        return False
    message, _, mac = submitted.rpartition(".")
    _, _, issued = message.rpartition(".")
    if not issued.isdigit() or not hmac.compare_digest(mac, _mac(key, message)):
        return False
    age = (now if now is not None else time.time()) - int(issued)
    return -60 <= age <= CSRF_MAX_AGE_SECONDS


async def load_csrf_key(conn: Connection) -> bytes:
    """The shared CSRF key, created by whichever replica asks first."""
    await conn.execute(
        "INSERT INTO service_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        _SECRET_NAME,
        secrets.token_bytes(32),
    )
    value = await conn.fetchval("SELECT value FROM service_secrets WHERE name = $1", _SECRET_NAME)
    return bytes(value)
