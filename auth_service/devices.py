"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies").

A browser that signed in to an account gets a cookie naming that account, signed by us. When
it signs in again, its attempts are counted on their own (``throttle.Scope.DEVICE``) instead
of against the account, its address and its client: a password-guessing attack on the
account, or from the same address, then slows the attacker without stopping the owner.

The cookie is not a credential: it lets nobody in without the password, names one account
only, and is refused for any other. Its id keys its own failure counter, so a stolen cookie
buys no more guesses than one client has. A new cookie replaces it at every successful login.
The MAC key is derived from the service's shared secret (``csrf.py``), under its own label.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

DEVICE_COOKIE = "auth_device"
DEVICE_MAX_AGE_SECONDS = 90 * 86_400  # renewed at each login: only an idle browser loses it
_MAX_LENGTH = 512
_LABEL = b"auth-service device cookie v1"


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _LABEL, hashlib.sha256).digest()


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(_key(secret), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_device_token(secret: bytes, username: str, now: float | None = None) -> str:
    """A fresh cookie value for a browser that just signed in as ``username``."""
    issued = int(now if now is not None else time.time())
    name = base64.urlsafe_b64encode(username.encode()).rstrip(b"=").decode()
    message = f"{secrets.token_urlsafe(16)}.{issued}.{name}"
    return f"{message}.{_mac(secret, message)}"


def device_id(
    secret: bytes, token: str | None, username: str, now: float | None = None
) -> str | None:
    """The id of ``token`` when it is ours, recent, and names exactly ``username``; else None."""
    if not token or len(token) > _MAX_LENGTH or token.count(".") != 3:
        return None
    message, _, mac = token.rpartition(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, message).encode()):
        return None
    nonce, issued, name = message.split(".")
    if not issued.isdigit():
        return None
    try:
        named = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    age = (now if now is not None else time.time()) - int(issued)
    if named != username or not -60 <= age <= DEVICE_MAX_AGE_SECONDS:
        return None
    return nonce
