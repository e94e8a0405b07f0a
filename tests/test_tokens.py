"""Our tokens: checked by an independent JWT library against our JWKS, tamper-proof, cached."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet

from auth_service.app import create_app
from auth_service.cache import TokenCache
from auth_service.errors import CredentialError, ExpiredToken
from auth_service.jws import sign_es256
from auth_service.keys import KeySet, SigningKey, generate_key
from auth_service.settings import Settings
from auth_service.tokens import TokenParameters, issue_access_token, verify_access_token
from auth_service.types import Identity, User

from .conftest import create_user, login

PARAMS = TokenParameters(
    issuer="http://auth.test",
    audience="auth-service",
    ttl_seconds=900,
    leeway_seconds=10,
    max_length=4096,
    max_lifetime_seconds=900,
)
USER = User(
    id="7d3f8b9e-0000-4000-8000-000000000001",
    username="alice",
    password_hash="x",
    disabled=False,
    groups=("admins",),
    created_at="",
    updated_at="",
)


def _key_set() -> KeySet:
    kid, pem, jwk = generate_key()
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    key = SigningKey(kid=kid, algorithm="ES256", private_key=private, public_jwk=jwk)  # type: ignore[arg-type]
    return KeySet(signing=key, verifying={kid: key})


KEYS = _key_set()


async def test_a_stock_jwt_library_verifies_our_token_with_our_jwks(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice", groups=("dev",))
    token = await login(client, "alice")
    jwks = (await client.get("/.well-known/jwks.json")).json()
    for jwk in jwks["keys"]:
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"
        assert jwk["alg"] == "ES256" and jwk["use"] == "sig" and jwk["kid"]
        assert "d" not in jwk  # never the private part

    decoded = jose_jwt.decode(token, JoseKeySet.import_key_set(jwks), algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] == jwks["keys"][0]["kid"]
    claims = decoded.claims
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": "http://auth.test"},
        aud={"essential": True, "value": "auth-service"},
        sub={"essential": True},
        jti={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(claims)
    assert claims["preferred_username"] == "alice"
    assert claims["groups"] == ["dev"]


async def test_users_and_keys_survive_a_restart(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    await create_user(database_url, "alice")
    settings = make_settings()

    async def run_once(token: str | None) -> tuple[str, dict[str, object], int]:
        application = create_app(settings, configure_logs=False)
        async with LifespanManager(application, startup_timeout=30):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
                token = token or await login(c, "alice")
                jwks = (await c.get("/.well-known/jwks.json")).json()
                status = (
                    await c.get(
                        "/api/v1/auth/validate", headers={"Authorization": f"Bearer {token}"}
                    )
                ).status_code
                return token, jwks, status

    token, jwks_before, status_before = await run_once(None)
    _, jwks_after, status_after = await run_once(token)
    assert status_before == status_after == 200
    assert jwks_before == jwks_after


def test_round_trip() -> None:
    token, ttl = issue_access_token(KEYS, PARAMS, USER, session_id="s1", scopes=("orders:read",))
    identity = verify_access_token(token, KEYS, PARAMS)
    assert identity.username == "alice" and identity.user_id == USER.id
    assert identity.groups == ("admins",) and identity.scopes == ("orders:read",)
    assert ttl == 900 and identity.expires_at == pytest.approx(time.time() + 900, abs=5)


def test_a_token_of_another_key_set_is_refused() -> None:
    token, _ = issue_access_token(_key_set(), PARAMS, USER, session_id="s1")
    with pytest.raises(CredentialError):
        verify_access_token(token, KEYS, PARAMS)


def test_expiry_respects_the_leeway() -> None:
    key = KEYS.signing
    now = int(time.time())
    claims = {
        "iss": PARAMS.issuer,
        "aud": PARAMS.audience,
        "sub": "s",
        "jti": "j",
        "sid": "s1",
        "preferred_username": "a",
        "iat": now - 100,
        "exp": now - 5,
    }
    expired_recently = sign_es256(
        {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims, key.private_key
    )
    verify_access_token(expired_recently, KEYS, PARAMS)  # within 10 s of leeway
    no_leeway = dataclasses.replace(PARAMS, leeway_seconds=0)
    with pytest.raises(ExpiredToken):
        verify_access_token(expired_recently, KEYS, no_leeway)


TOKEN = issue_access_token(KEYS, PARAMS, USER, session_id="s1")[0]


@settings(max_examples=200, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(TOKEN) - 1),
    replacement=st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    ),
)
def test_any_edited_character_is_refused(position: int, replacement: str) -> None:
    edited = TOKEN[:position] + replacement + TOKEN[position + 1 :]
    if edited == TOKEN:
        return
    try:
        identity = verify_access_token(edited, KEYS, PARAMS)
    except CredentialError:
        return
    # Base64url has slack in its last character: an edit that decodes to the same bytes is the
    # same token; anything accepted must carry exactly the original identity.
    assert identity == verify_access_token(TOKEN, KEYS, PARAMS)


def _identity(seconds: float) -> Identity:
    return Identity("id", "alice", (), (), "jti", time.time() + seconds)


def test_cache_holds_its_bound_and_forgets_expired_entries() -> None:
    now = [1000.0]
    cache = TokenCache(max_entries=100, clock=lambda: now[0])
    for i in range(1000):
        cache.put(f"token-{i}", _identity(60))
        assert len(cache) <= 100
    assert cache.get("token-999") is not None
    assert cache.get("token-0") is None  # evicted, oldest first
    now[0] += 61
    assert cache.get("token-999") is None  # expired with its token
    cache.put("already-expired", _identity(-1))
    assert cache.get("already-expired") is None
