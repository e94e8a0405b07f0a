"""The hot path: from a request's credential to an identity, from memory only.

Parsing is strict (RFC 6750): exactly one ``Authorization`` header, the ``Bearer`` scheme
matched case-insensitively, a token of the b64token character set, and a length cap applied
before any decoding. Verified tokens are kept in a bounded cache (``cache.py``) until they expire,
so a repeated token costs one dictionary look-up.
"""

from __future__ import annotations

import re
from collections.abc import Container

from .cache import CachedIdentity, TokenCache
from .errors import (
    InvalidToken,
    MalformedCredential,
    MissingCredential,
    RevokedToken,
    TokenTooLong,
)
from .issuers import IssuerRegistry
from .jws import CompactJWS
from .keys import KeySet
from .oauth.resources import ResourceSet
from .tokens import TokenParameters, verify_parsed
from .types import Identity

_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
_B64TOKEN_TEXT = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def extract_bearer_token(authorization: list[bytes], max_length: int) -> str:
    """The token of the single ``Authorization: Bearer`` header among ``authorization``."""
    return _check_charset(_bearer_token(authorization, max_length).decode("latin-1"))


def _bearer_token(authorization: list[bytes], max_length: int) -> bytes:
    """The Bearer token as sent: one header, the right scheme, the length cap; the
    character set is left to ``_check_charset``."""
    if not authorization:
        raise MissingCredential("no credential was sent")
    if len(authorization) > 1:
        raise MalformedCredential("more than one Authorization header")
    value = authorization[0].strip()
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer":
        raise MalformedCredential("the Authorization scheme is not Bearer")
    token = token.lstrip(b" ")
    if len(token) > max_length:
        raise TokenTooLong(f"token longer than {max_length} characters")
    return token


def _check_charset(token: str) -> str:
    """``token`` when it is a non-empty b64token (RFC 6750), else ``MalformedCredential``."""
    if not _B64TOKEN_TEXT.fullmatch(token):
        raise MalformedCredential("the Bearer token is empty or has invalid characters")
    return token


def extract_cookie_token(cookie_headers: list[bytes], name: bytes, max_length: int) -> str | None:
    """The value of cookie ``name`` (the session token), or None when it is absent."""
    prefix = name + b"="
    for header in cookie_headers:
        for part in header.split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                token = part[len(prefix) :]
                if len(token) > max_length:
                    raise TokenTooLong(f"session cookie longer than {max_length} characters")
                if not _B64TOKEN.fullmatch(token):
                    raise MalformedCredential("the session cookie has invalid characters")
                return token.decode("ascii")
    return None


def prefers_html(accept: bytes | None) -> bool:
    """True when ``Accept`` names ``text/html`` explicitly, at least as high as JSON.

    Browsers list text/html first; API clients ask for JSON or send ``*/*`` (curl), and get
    a 401 rather than a redirect to a login form they cannot use.
    """
    if not accept or b"text/html" not in accept:
        return False
    html_q = json_q = 0.0
    for item in accept.decode("latin-1").split(","):
        media, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media == "text/html":
            html_q = max(html_q, q)
        elif media == "application/json":
            json_q = max(json_q, q)
    return html_q > 0 and html_q >= json_q


class Authenticator:
    """Turns a request's credential into a cached identity, or raises ``CredentialError``."""

    def __init__(
        self,
        keys: KeySet,
        params: TokenParameters,
        cache: TokenCache,
        cookie_name: str,
        revoked: Container[str | None] = (),
        issuers: IssuerRegistry | None = None,
        resources: ResourceSet | None = None,
    ) -> None:
        self.keys = keys
        self.params = params
        self.cache = cache
        self.cookie_name = cookie_name.encode()
        self.revoked = revoked
        self.issuers = issuers
        self.resources = resources  # the OAuth resources in force; None: OAuth is off

    def use_keys(self, keys: KeySet) -> None:
        """Verify with a new key set (after a rotation); forget what the old one verified."""
        self.keys = keys
        self.cache.clear()

    async def authenticate(
        self, authorization: list[bytes], cookies: list[bytes] | None = None
    ) -> tuple[CachedIdentity, bool]:
        """The identity for the request's credential and whether it was cached.

        An ``Authorization`` header wins; without one, the session cookie is read.
        """
        token, entry = self.lookup(authorization, cookies)
        if entry is not None:
            return entry, True
        return await self.verify(token, bearer=bool(authorization)), False

    def lookup(
        self, authorization: list[bytes], cookies: list[bytes] | None = None
    ) -> tuple[str, CachedIdentity | None]:
        """The request's token, and its cache entry when it was verified before (the whole
        answer for a repeated token, without a coroutine); ``verify`` takes the others."""
        token = None
        if not authorization and cookies:
            token = extract_cookie_token(cookies, self.cookie_name, self.params.max_length)
        if token is None:
            # latin-1 decodes any bytes. The character set is checked by ``verify`` only:
            # the cache holds nothing but tokens that passed that check, so a hit on the
            # exact string needs no check of its own. The length cap has been applied.
            token = _bearer_token(authorization, self.params.max_length).decode("latin-1")
        entry = self.cache.get(token)
        if entry is not None:
            self._check_usable(entry, bool(authorization))
        return token, entry

    async def verify(self, token: str, *, bearer: bool) -> CachedIdentity:
        """Verify a token that is not in the cache, and cache it. ``bearer``: it came in
        the ``Authorization`` header (``lookup`` reads the cookie only without one)."""
        _check_charset(token)
        entry = self.cache.put(token, await self._verify(token))
        self._check_usable(entry, bearer)
        return entry

    def _check_usable(self, entry: CachedIdentity, bearer: bool) -> None:
        # Checked on every request, cached or not: a logout takes effect at once.
        if entry.session_id in self.revoked:
            raise RevokedToken("the session of this token has ended")
        # The session cookie reaches every upstream; its token must not work elsewhere.
        if bearer and entry.cookie_only:
            raise InvalidToken("a session cookie's token is not accepted as a Bearer token")

    async def _verify(self, token: str) -> Identity:
        """Our token, or one of a configured external issuer: a ``kid`` of ours decides,
        then ``iss``. The token is parsed once for all of it."""
        jws = CompactJWS(token)
        kid = jws.header.get("kid")
        ours = isinstance(kid, str) and kid in self.keys.verifying
        if not ours and self.issuers is not None and self.issuers.issuers:
            iss = jws.unverified_payload().get("iss")
            if isinstance(iss, str) and iss in self.issuers:
                return await self.issuers.verify(token, iss, jws.header)
        return verify_parsed(jws, self.keys, self.params, self.resources)
