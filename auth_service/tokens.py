"""Issue and verify our access tokens (RFC 9068 JWTs, ``typ: at+jwt``).

Verification is explicit: the key comes from our key set by ``kid``, the algorithm is the
one that key was made for, and every required claim is checked for presence and type. The
token header never chooses the algorithm or where the key comes from (RFC 8725). ``jws.py``
signs our tokens, and parses and checks their signature on validate's hot path.

Every token we issue belongs to a session (``sid``), so that a logout, a disabled account or
a new password can end it; and none lives longer than the longest lifetime we configure. A
token without ``sid``, or whose ``exp - iat`` exceeds that lifetime plus the leeway, was not
made by us, whoever holds the key: both are refused.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from .errors import ExpiredToken, InvalidToken, MissingClaim, TokenTooLong
from .jws import CompactJWS, sign_es256
from .keys import KeySet
from .types import Identity, User

if TYPE_CHECKING:
    from .oauth.resources import Resource, ResourceSet

ACCESS_TOKEN_TYPE = "at+jwt"
# The browser's session cookie holds a token of its own type (RFC 8725 3.11, explicit
# typing): it is forwarded to every upstream with the Cookie header, so validate accepts it
# from the cookie only, never as ``Authorization: Bearer``.
SESSION_COOKIE_TOKEN_TYPE = "session+jwt"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti", "sid")
_ACCEPTED_TYP = {"at+jwt", "application/at+jwt"}
_COOKIE_TYP = {SESSION_COOKIE_TOKEN_TYPE, "application/" + SESSION_COOKIE_TOKEN_TYPE}
_ALLOWED_HEADER_PARAMS = {"alg", "kid", "typ"}


@dataclass(frozen=True, slots=True)
class TokenParameters:
    """What our tokens are checked against: taken from the settings once."""

    issuer: str
    audience: str
    ttl_seconds: int
    leeway_seconds: int
    max_length: int
    max_lifetime_seconds: int  # the longest exp - iat we issue (access or session token)


def issue_access_token(
    keys: KeySet,
    params: TokenParameters,
    user: User,
    *,
    session_id: str,
    scopes: tuple[str, ...] = (),
    ttl_seconds: int | None = None,
    session_cookie: bool = False,
    resource: str | None = None,
    client_id: str | None = None,
) -> tuple[str, int]:
    """Sign an access token for ``user``; returns (token, lifetime in seconds).

    ``session_id`` becomes the ``sid`` claim that ties the token to the login it came from;
    ``ttl_seconds`` overrides the lifetime (browser sessions); ``session_cookie`` types the
    token for the session cookie only. An OAuth access token names its ``resource`` as its
    ``aud`` (RFC 8707: no other server may accept it) and the ``client_id`` it was issued to
    (RFC 9068 §2.2); both or neither.
    """
    if (resource is None) != (client_id is None):
        raise ValueError("an OAuth access token names both its resource and its client")
    if not session_id:
        raise ValueError("every token we issue belongs to a session")
    ttl = ttl_seconds or params.ttl_seconds
    if ttl > params.max_lifetime_seconds:
        raise ValueError("a token would outlive the longest configured lifetime")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": params.issuer,
        "sub": user.id,
        "aud": resource if resource is not None else params.audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
        "sid": session_id,
        "preferred_username": user.username,
        "groups": list(user.groups),
    }
    if client_id is not None:
        claims["client_id"] = client_id
    if scopes:
        claims["scope"] = " ".join(scopes)
    key = keys.signing
    header = {
        "alg": key.algorithm,
        "kid": key.kid,
        "typ": SESSION_COOKIE_TOKEN_TYPE if session_cookie else ACCESS_TOKEN_TYPE,
    }
    return sign_es256(header, claims, key.private_key), ttl


def verify_access_token(token: str, keys: KeySet, params: TokenParameters) -> Identity:
    """The identity in a valid token of ours; a ``CredentialError`` subclass otherwise."""
    if len(token) > params.max_length:
        raise TokenTooLong(f"token longer than {params.max_length} characters")
    return verify_parsed(CompactJWS(token), keys, params)


def verify_parsed(
    jws: CompactJWS, keys: KeySet, params: TokenParameters, resources: ResourceSet | None = None
) -> Identity:
    """``verify_access_token`` for a token already split (and its length checked).

    ``resources``: the OAuth resources in force (None: OAuth is off). A token whose ``aud``
    is one of them, issued to a ``client_id``, is an OAuth access token for that resource;
    the caller checks that each request is on it.
    """
    header = jws.header
    typ = header.get("typ")
    typ = typ.lower() if isinstance(typ, str) else None
    cookie_only = typ in _COOKIE_TYP
    if typ not in _ACCEPTED_TYP and not cookie_only:
        raise InvalidToken("the token is not an access token (typ)")
    if not header.keys() <= _ALLOWED_HEADER_PARAMS:  # "crit" among them
        raise InvalidToken("the token header has parameters we do not accept")
    kid = header.get("kid")
    key = keys.verifying.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("the token was not signed by a key we know")
    if header.get("alg") != key.algorithm:
        raise InvalidToken("the token's algorithm does not match its key")
    claims = jws.verified_payload(key.algorithm, key.public_key)
    _check_claims(claims, params)
    resource = None
    if claims["aud"] != params.audience:  # one audience, a string (RFC 9068 allows no other)
        resource = _resource(claims, resources, cookie_only)
    return _identity(claims, cookie_only=cookie_only, resource=resource)


def _resource(claims: dict[str, Any], resources: ResourceSet | None, cookie_only: bool) -> Resource:
    """The resource an OAuth access token was issued for (RFC 8707): its ``aud``, exactly
    the canonical URL of a resource in force, with the client it was issued to."""
    aud = claims["aud"]
    resource = None
    if resources is not None and isinstance(aud, str) and not cookie_only:
        resource = resources.get(aud)
    if resource is None or resource.url != aud:
        raise InvalidToken("the token is meant for someone else (aud)")
    if not isinstance(claims.get("client_id"), str) or not claims["client_id"]:
        raise MissingClaim("client_id")
    return resource


def session_of_access_token(token: str, keys: KeySet) -> str | None:
    """The ``sid`` of an OAuth access token signed by one of our keys (expired or not), or
    None: what revocation (RFC 7009) needs of an access token, and nothing more."""
    if len(token) > 16_384:
        return None
    try:
        jws = CompactJWS(token)
        kid = jws.header.get("kid")
        key = keys.verifying.get(kid) if isinstance(kid, str) else None
        if key is None or jws.header.get("alg") != key.algorithm:
            return None
        claims = jws.verified_payload(key.algorithm, key.public_key)
    except (InvalidToken, ValueError):
        return None
    sid = claims.get("sid")
    if not isinstance(claims.get("client_id"), str) or not isinstance(sid, str):
        return None
    return sid


def _check_claims(claims: dict[str, Any], params: TokenParameters) -> None:
    """Registered claims (RFC 7519 §4.1): present, of the right type, and in time."""
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise MissingClaim(name)
    now = time.time()
    leeway = params.leeway_seconds
    issued = _number(claims, "iat")
    if issued > now + leeway:
        raise InvalidToken("the token is not valid yet (iat)")
    if "nbf" in claims and _number(claims, "nbf") > now + leeway:
        raise InvalidToken("the token is not valid yet (nbf)")
    expires = _number(claims, "exp")
    if expires <= now - leeway:
        raise ExpiredToken("the token has expired")
    if expires - issued > params.max_lifetime_seconds + leeway:
        raise InvalidToken("the token lives longer than any token we issue (exp - iat)")
    if claims["iss"] != params.issuer:
        raise InvalidToken("the token was issued by someone else (iss)")


def _number(claims: dict[str, Any], name: str) -> float:
    """A NumericDate claim as a finite float; ``MissingClaim`` for anything else."""
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MissingClaim(name)
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise MissingClaim(name) from None
    if not math.isfinite(number):  # 1e999 parses as infinity
        raise MissingClaim(name)
    return number


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


def _identity(
    claims: dict[str, Any], *, cookie_only: bool = False, resource: Resource | None = None
) -> Identity:
    """Check claim types and build the identity."""
    for name in ("sub", "jti", "sid", "preferred_username"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise MissingClaim(name)
    groups = claims.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise MissingClaim("groups")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise MissingClaim("scope")
    return Identity(
        user_id=claims["sub"],
        username=claims["preferred_username"],
        groups=tuple(groups),
        scopes=tuple(scope.split()),
        token_id=claims["jti"],
        expires_at=_number(claims, "exp"),
        session_id=claims["sid"],
        cookie_only=cookie_only,
        resource=resource,
        client_id=claims["client_id"] if resource is not None else None,
    )
