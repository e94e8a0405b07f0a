"""CSRF protection for our HTML forms: tokens bound to a pre-session cookie.

A browser that opens one of our forms gets a pre-session cookie (a random id, ``HttpOnly``,
``__Host-`` when Secure) and the form a token: a nonce and the time of issue, with an HMAC
over both and the pre-session id. A post is accepted only when its token carries our MAC for
the pre-session cookie the browser sent, and is recent. Another site can make a browser post
a form, but cannot read the cookie or forge the MAC; and a token the attacker got from our
own page, for the attacker's own pre-session, is worth nothing in the victim's browser (login
CSRF). The ``__Host-`` prefix keeps a sibling subdomain from planting the attacker's cookie
there. The HMAC key is shared by all replicas through the ``service_secrets`` table, sealed
with the key-encryption key there (``service_secrets.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

from .db import Connection
from .key_encryption import KeyRing
from .service_secrets import load_service_secret

CSRF_MAX_AGE_SECONDS = 3600
_SECRET_NAME = "csrf"
_PRESESSION = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 random bytes, unpadded base64url


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_presession() -> str:
    """A fresh pre-session id for the pre-session cookie."""
    return secrets.token_urlsafe(32)


def is_presession(value: str | None) -> bool:
    """Whether ``value`` has the shape of a pre-session id (anything else is replaced)."""
    return value is not None and _PRESESSION.fullmatch(value) is not None


def issue_csrf_token(key: bytes, presession: str, now: float | None = None) -> str:
    """A fresh token for the browser holding ``presession``: nonce, time of issue, MAC."""
    issued = int(now if now is not None else time.time())
    message = f"{secrets.token_urlsafe(16)}.{issued}"
    return f"{message}.{_mac(key, presession + '.' + message)}"


def check_csrf_token(
    key: bytes, submitted: str | None, presession: str | None, now: float | None = None
) -> bool:
    """True when the submitted token is ours, for this pre-session, and recent."""
    if not submitted or len(submitted) > 256 or not is_presession(presession):
        return False
    message, _, mac = submitted.rpartition(".")
    _, _, issued = message.rpartition(".")
    if not issued.isdigit() or len(issued) > 12:
        return False
    if not hmac.compare_digest(mac.encode(), _mac(key, f"{presession}.{message}").encode()):
        return False
    age = (now if now is not None else time.time()) - int(issued)
    return -60 <= age <= CSRF_MAX_AGE_SECONDS


async def load_csrf_key(conn: Connection, ring: KeyRing) -> bytes:
    """The shared CSRF key, created by whichever replica asks first."""
    return await load_service_secret(conn, ring, _SECRET_NAME)
