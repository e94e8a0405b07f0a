"""Issue and verify our access tokens (RFC 9068 JWTs, ``typ: at+jwt``).

Verification is explicit: the key comes from our key set by ``kid``, the algorithm is the
one that key was made for, and every required claim is checked for presence and type. The
token header never chooses the algorithm or where the key comes from (RFC 8725).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jwt

from .errors import ExpiredToken, InvalidToken, MissingClaim, TokenTooLong
from .keys import KeySet
from .types import Identity, User

ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")
_ACCEPTED_TYP = {"at+jwt", "application/at+jwt"}
_ALLOWED_HEADER_PARAMS = {"alg", "kid", "typ"}


@dataclass(frozen=True, slots=True)
class TokenParameters:
    """What our tokens are checked against: taken from the settings once."""

    issuer: str
    audience: str
    ttl_seconds: int
    leeway_seconds: int
    max_length: int


def issue_access_token(
    keys: KeySet,
    params: TokenParameters,
    user: User,
    *,
    scopes: tuple[str, ...] = (),
    ttl_seconds: int | None = None,
    session_id: str | None = None,
) -> tuple[str, int]:
    """Sign an access token for ``user``; returns (token, lifetime in seconds).

    ``ttl_seconds`` overrides the lifetime (browser sessions); ``session_id`` becomes the
    ``sid`` claim that ties the token to the login it came from.
    """
    ttl = ttl_seconds or params.ttl_seconds
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": params.issuer,
        "sub": user.id,
        "aud": params.audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
        "preferred_username": user.username,
        "groups": list(user.groups),
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    if session_id:
        claims["sid"] = session_id
    key = keys.signing
    token = jwt.encode(
        claims,
        key.private_key,
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )
    return token, ttl


def verify_access_token(token: str, keys: KeySet, params: TokenParameters) -> Identity:
    """The identity in a valid token of ours; a ``CredentialError`` subclass otherwise."""
    if len(token) > params.max_length:
        raise TokenTooLong(f"token longer than {params.max_length} characters")
    header = _strict_segments(token)

    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise InvalidToken("the token is not an access token (typ)")
    if "crit" in header or not set(header) <= _ALLOWED_HEADER_PARAMS:
        raise InvalidToken("the token header has parameters we do not accept")
    kid = header.get("kid")
    key = keys.verifying.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("the token was not signed by a key we know")
    if header.get("alg") != key.algorithm:
        raise InvalidToken("the token's algorithm does not match its key")

    with jwt_errors():
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.algorithm],
            audience=params.audience,
            issuer=params.issuer,
            leeway=params.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
        )
    return _identity(claims)


@contextmanager
def jwt_errors() -> Iterator[None]:
    """PyJWT's exceptions, as our credential errors."""
    try:
        yield
    except jwt.ExpiredSignatureError as e:
        raise ExpiredToken("the token has expired") from e
    except jwt.MissingRequiredClaimError as e:
        raise MissingClaim(e.claim) from e
    except jwt.PyJWTError as e:
        raise InvalidToken(f"the token failed verification: {type(e).__name__}") from e


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InvalidToken("the token repeats a header parameter or claim")
    return dict(pairs)


def _strict_segments(token: str) -> dict[str, Any]:
    """The header, after checking that header and payload are JSON objects without repeated
    names: parsers disagree on which of two values wins, so such a token is refused."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("the token is not a well-formed JWT")
    try:
        header, payload = (
            json.loads(
                jwt.utils.base64url_decode(part.encode("ascii")), object_pairs_hook=_no_duplicates
            )
            for part in parts[:2]
        )
    except InvalidToken:
        raise
    except (ValueError, TypeError, RecursionError) as e:
        raise InvalidToken("the token is not a well-formed JWT") from e
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise InvalidToken("the token is not a well-formed JWT")
    return header


def _identity(claims: dict[str, Any]) -> Identity:
    """Check claim types and build the identity."""
    for name in ("sub", "jti", "preferred_username"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise MissingClaim(name)
    groups = claims.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise MissingClaim("groups")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise MissingClaim("scope")
    sid = claims.get("sid")
    if sid is not None and not isinstance(sid, str):
        raise MissingClaim("sid")
    exp = claims["exp"]
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise MissingClaim("exp")
    return Identity(
        user_id=claims["sub"],
        username=claims["preferred_username"],
        groups=tuple(groups),
        scopes=tuple(scope.split()),
        token_id=claims["jti"],
        expires_at=float(exp),
        session_id=sid,
    )
