"""Trusted external OpenID issuers: their JWKS, kept in memory, and verification of their tokens.

JWKS documents are fetched with httpx in the background (every ``refresh_interval``), never on
the request path, except once for an unknown ``kid``: that fetch is shared by every request
waiting for it and allowed at most once per issuer per ``cooldown``, so a flood of made-up
``kid`` values costs one fetch. When an issuer cannot be reached the keys already known keep
working; the failure is logged at WARNING once per cool-down and counted.

A token is matched to its issuer by ``iss`` before any key is chosen; the key must come from
that issuer's JWKS and the algorithm from its allow-list and the key's type.

An issuer's users are not ours: the identity names its issuer (``X-Auth-Issuer``), and the
issuer's settings may prefix its usernames and keep or rename only some of its groups
(``config.IssuerConfig``). Names with surrounding whitespace or control characters are
refused, so that ``alice `` cannot pass for ``alice``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from .config import IssuerConfig
from .errors import InvalidToken, MissingClaim
from .metrics import JWKS_FETCHES
from .tokens import jwt_errors
from .types import Identity

log = logging.getLogger(__name__)

_KEY_TYPES = {"RSA", "EC", "OKP"}
_ALGORITHMS_BY_KEY = {
    "RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
    "EC:P-256": {"ES256"},
    "EC:P-384": {"ES384"},
    "EC:P-521": {"ES512"},
    "OKP:Ed25519": {"EdDSA"},
}
_ACCESS_TOKEN_TYP = {"at+jwt", "application/at+jwt"}  # RFC 9068
_ACCEPTED_TYP = {"jwt", *_ACCESS_TOKEN_TYP}
_MAX_JWKS_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class ExternalKey:
    """A verification key of an external issuer, with the algorithms it may be used with."""

    kid: str
    key: Any
    algorithms: frozenset[str]


@dataclass
class ExternalIssuer:
    """One configured issuer and the keys we currently know for it."""

    config: IssuerConfig
    keys: dict[str, ExternalKey] = field(default_factory=dict)
    jwks_uri: str | None = None
    last_fetch: float = float("-inf")  # monotonic
    last_warning: float = float("-inf")
    in_flight: asyncio.Task[None] | None = None


def usable_keys(jwks: Any, allowed: tuple[str, ...]) -> dict[str, ExternalKey]:
    """The signature keys of a JWKS document that we may use; everything else is ignored
    (encryption keys, unknown types, keys without ``kid``, algorithms not allowed)."""
    found: dict[str, ExternalKey] = {}
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(entries, list):
        return found
    for jwk in entries:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kty, kid = jwk.get("kty"), jwk.get("kid")
        if kty not in _KEY_TYPES or not isinstance(kid, str) or not kid or "d" in jwk:
            continue
        if "key_ops" in jwk and "verify" not in (jwk.get("key_ops") or []):
            continue
        family = "RSA" if kty == "RSA" else f"{kty}:{jwk.get('crv')}"
        algorithms = _ALGORITHMS_BY_KEY.get(family, set()) & set(allowed)
        if isinstance(jwk.get("alg"), str):
            algorithms &= {jwk["alg"]}
        if not algorithms:
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=sorted(algorithms)[0]).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        found[kid] = ExternalKey(kid, key, frozenset(algorithms))
    return found


class IssuerRegistry:
    """Every configured issuer by ``iss``; fetches and verifies."""

    def __init__(
        self,
        configs: tuple[IssuerConfig, ...],
        client: httpx.AsyncClient,
        *,
        cooldown: float = 30.0,
        leeway: int = 10,
    ) -> None:
        self.issuers = {c.issuer: ExternalIssuer(c, jwks_uri=c.jwks_uri) for c in configs}
        self._client = client
        self.cooldown = cooldown
        self.leeway = leeway

    def __contains__(self, iss: object) -> bool:
        return iss in self.issuers

    def reconfigure(self, configs: tuple[IssuerConfig, ...]) -> list[ExternalIssuer]:
        """Take a new list of issuers; unchanged ones keep their keys. Returns the new ones."""
        kept = {
            c.issuer: self.issuers[c.issuer]
            for c in configs
            if c.issuer in self.issuers and self.issuers[c.issuer].config == c
        }
        added = [ExternalIssuer(c, jwks_uri=c.jwks_uri) for c in configs if c.issuer not in kept]
        self.issuers = {**kept, **{i.config.issuer: i for i in added}}
        return added

    async def refresh_some(self, issuers: list[ExternalIssuer]) -> None:
        """Fetch the JWKS of these issuers now."""
        await asyncio.gather(*(self._fetch(i) for i in issuers))

    async def refresh_periodically(self, interval: float) -> None:
        """The background task: every issuer's JWKS every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh_all()

    async def refresh_all(self) -> None:
        """Fetch every issuer's JWKS now (start-up, the periodic task, SIGUSR1)."""
        await asyncio.gather(*(self._fetch(i) for i in self.issuers.values()))

    async def _fetch(self, issuer: ExternalIssuer) -> None:
        name = issuer.config.issuer
        issuer.last_fetch = time.monotonic()
        try:
            if issuer.jwks_uri is None:
                discovery = await self._get_json(
                    name.rstrip("/") + "/.well-known/openid-configuration"
                )
                uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
                if discovery.get("issuer") != name or not isinstance(uri, str):
                    raise ValueError("the discovery document does not match the issuer")
                issuer.jwks_uri = uri
            keys = usable_keys(await self._get_json(issuer.jwks_uri), issuer.config.algorithms)
        except (httpx.HTTPError, ValueError) as e:
            JWKS_FETCHES.labels(name, "failure").inc()
            now = time.monotonic()
            if now - issuer.last_warning >= self.cooldown:
                issuer.last_warning = now
                log.warning(
                    "cannot fetch the keys of an issuer; the keys already known keep working",
                    extra={"issuer": name, "error": f"{type(e).__name__}: {e}"[:200]},
                )
            return
        JWKS_FETCHES.labels(name, "success").inc()
        if keys:
            issuer.keys = keys
        else:
            log.warning("an issuer's JWKS has no usable signature key", extra={"issuer": name})

    async def _get_json(self, url: str) -> Any:
        response = await self._client.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > _MAX_JWKS_BYTES:
            raise ValueError("document too large")
        return response.json()

    async def _key_for(self, issuer: ExternalIssuer, kid: str) -> ExternalKey | None:
        key = issuer.keys.get(kid)
        if key is not None:
            return key
        # An unknown kid: the provider may have rotated. One shared fetch per cool-down.
        if issuer.in_flight is None or issuer.in_flight.done():
            if time.monotonic() - issuer.last_fetch < self.cooldown:
                return None
            issuer.in_flight = asyncio.ensure_future(self._fetch(issuer))
        await asyncio.shield(issuer.in_flight)
        return issuer.keys.get(kid)

    async def verify(self, token: str, iss: str, header: dict[str, Any]) -> Identity:
        """The identity in a token of the configured issuer ``iss``; ``CredentialError`` else."""
        issuer = self.issuers[iss]
        typ = header.get("typ")
        accepted = _ACCESS_TOKEN_TYP if issuer.config.require_access_token_type else _ACCEPTED_TYP
        if typ is None and issuer.config.require_access_token_type:
            raise InvalidToken("the token is not an access token (no typ)")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in accepted):
            raise InvalidToken("the token is not an access token (typ)")
        if "crit" in header:
            raise InvalidToken("the token header has parameters we do not accept")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key")
        key = await self._key_for(issuer, kid)
        if key is None:
            raise InvalidToken("the token was not signed by a key of its issuer")
        algorithm = header.get("alg")
        if algorithm not in key.algorithms:
            raise InvalidToken("the token's algorithm is not allowed for its key")
        config = issuer.config
        with jwt_errors():
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=config.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        return _identity(claims, config)


def _header_safe(value: str, *, allow_comma: bool = True) -> bool:
    """Printable, single-line text without surrounding whitespace: it ends up in X-Auth-*
    headers, and ``alice `` must not look like ``alice``."""
    return (
        bool(value)
        and value.isprintable()
        and value == value.strip()
        and (allow_comma or "," not in value)
    )


def _identity(claims: dict[str, Any], config: IssuerConfig) -> Identity:
    username = claims.get(config.username_claim)
    if not isinstance(username, str) or not _header_safe(username):
        raise MissingClaim(config.username_claim)
    username = config.username_prefix + username
    sub = claims["sub"]
    if not isinstance(sub, str) or not _header_safe(sub):
        raise MissingClaim("sub")
    groups = claims.get(config.groups_claim, [])
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and _header_safe(g, allow_comma=False) for g in groups
    ):
        raise MissingClaim(config.groups_claim)
    scope = claims.get("scope", claims.get("scp", ""))
    scopes = scope.split() if isinstance(scope, str) else scope
    if not isinstance(scopes, list) or not all(
        isinstance(s, str) and _header_safe(s) and " " not in s for s in scopes
    ):
        raise MissingClaim("scope")
    exp = claims["exp"]
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise MissingClaim("exp")
    return Identity(
        user_id=sub,
        username=username,
        groups=config.local_groups(groups),
        scopes=tuple(scopes),
        token_id=str(claims.get("jti", "")),
        expires_at=float(exp),
        issuer=config.issuer,
    )
