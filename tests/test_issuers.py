"""Tokens of a trusted external issuer, verified through its JWKS (a stand-in provider)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import AuthServiceApp, create_app
from auth_service.issuers import usable_keys
from auth_service.settings import Settings

from .conftest import Served, create_user, login
from .idp import StandInProvider, ec_key

VALIDATE = "/api/v1/auth/validate"


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    idp = StandInProvider()
    yield idp
    idp.close()


def write_config(path: Path, provider: StandInProvider, rules: str = "") -> Path:
    path.write_text(
        f"""
        [[issuers]]
        issuer = "{provider.issuer}"
        audience = "api://orders"
        username_claim = "preferred_username"
        groups_claim = "groups"
        algorithms = ["RS256", "ES256"]
        {rules}
        """
    )
    return path


@pytest.fixture
async def app(
    make_settings: Callable[..., Settings], provider: StandInProvider, tmp_path: Path
) -> AsyncIterator[AuthServiceApp]:
    settings = make_settings(
        config=write_config(tmp_path / "auth.toml", provider), jwks_cooldown_seconds=1.0
    )
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        yield application


async def check(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(VALIDATE, headers={"Authorization": f"Bearer {token}"})


async def test_an_external_token_is_accepted_with_identity_from_the_configured_claims(
    client: httpx.AsyncClient, provider: StandInProvider
) -> None:
    response = await check(client, provider.token())
    assert response.status_code == 200, response.text
    assert response.headers["x-auth-user"] == "carol"
    assert response.headers["x-auth-user-id"] == "user-123"
    assert response.headers["x-auth-groups"] == "engineering,oncall"
    assert response.headers["x-auth-scopes"] == "orders:read orders:write"
    assert response.headers["x-auth-issuer"] == provider.issuer


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"aud": "api://billing"}, "invalid_token"),
        ({"iss": "https://unknown-issuer.example"}, "invalid_token"),
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 600}, "expired_token"),
        ({"kid": "never-published"}, "invalid_token"),
        ({"preferred_username": None}, "invalid_token"),
        ({"groups": "a,b"}, "invalid_token"),
        ({"preferred_username": "carol\r\nX-Auth-User: admin"}, "invalid_token"),
        ({"preferred_username": "alice "}, "invalid_token"),
        ({"preferred_username": "\talice"}, "invalid_token"),
        ({"preferred_username": "alice\u00a0"}, "invalid_token"),
        ({"preferred_username": "al\x7fice"}, "invalid_token"),
        ({"groups": ["admins "]}, "invalid_token"),
        ({"groups": [" admins"]}, "invalid_token"),
        ({"groups": ["adm\x00ins"]}, "invalid_token"),
        ({"sub": " user-123"}, "invalid_token"),
        ({"algorithm": "RS512"}, "invalid_token"),
    ],
)
async def test_bad_external_tokens_are_refused(
    client: httpx.AsyncClient, provider: StandInProvider, changes: dict[str, Any], error: str
) -> None:
    kid = changes.pop("kid", None)
    algorithm = changes.pop("algorithm", "RS256")
    token = provider.token(kid=kid, algorithm=algorithm, **changes)
    response = await check(client, token)
    assert response.status_code == 401
    assert response.json()["error"] == error


NAMESPACED = """
username_prefix = "corp:"
groups_allowed = ["engineering"]
groups_map = { "idp-admins" = "ops" }
require_access_token_type = true

[[rules]]
id = "admin-only"
path = "/admin/**"
groups = ["admins"]
"""


@pytest.fixture
async def namespaced(
    make_settings: Callable[..., Settings], provider: StandInProvider, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A service whose issuer has a username prefix, a group allow-list and mapping, and
    requires typ at+jwt; and a rule for our own admins."""
    config = write_config(tmp_path / "auth.toml", provider, NAMESPACED)
    application = create_app(make_settings(config=config), configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            yield c


async def test_an_issuers_names_are_kept_apart_from_ours(
    namespaced: httpx.AsyncClient, provider: StandInProvider, database_url: str
) -> None:
    # The issuer's alice, in its groups admins, engineering and idp-admins.
    token = provider.token(
        typ="at+jwt",
        preferred_username="alice",
        groups=["admins", "engineering", "idp-admins", "engineering"],
    )
    response = await check(namespaced, token)
    assert response.status_code == 200, response.text
    assert response.headers["x-auth-user"] == "corp:alice"
    assert response.headers["x-auth-groups"] == "engineering,ops"  # admins dropped
    assert response.headers["x-auth-issuer"] == provider.issuer
    # Our admins' rule does not admit the issuer's "admins"...
    forwarded = {"X-Forwarded-Uri": "/admin/panel", "X-Forwarded-Host": "app.example.com"}
    denied = await namespaced.get(
        VALIDATE, headers={**forwarded, "Authorization": f"Bearer {token}"}
    )
    assert denied.status_code == 403 and denied.json()["rule"] == "admin-only"
    # ...but does admit our own alice in admins, whose issuer header is empty.
    await create_user(database_url, "alice", groups=("admins",))
    ours = await login(namespaced, "alice")
    allowed = await namespaced.get(
        VALIDATE, headers={**forwarded, "Authorization": f"Bearer {ours}"}
    )
    assert allowed.status_code == 200
    assert allowed.headers["x-auth-user"] == "alice"
    assert allowed.headers["x-auth-issuer"] == ""


@pytest.mark.parametrize(
    ("typ", "status"),
    [("at+jwt", 200), ("application/at+jwt", 200), ("AT+JWT", 200), ("JWT", 401), (None, 401)],
)
async def test_an_issuer_that_marks_its_access_tokens_gets_no_id_token_through(
    namespaced: httpx.AsyncClient, provider: StandInProvider, typ: str | None, status: int
) -> None:
    response = await check(namespaced, provider.token(typ=typ))
    assert response.status_code == status, response.text
    if status == 401:
        assert response.json()["error"] == "invalid_token"


async def test_id_tokens_pass_where_the_issuer_does_not_mark_access_tokens(
    client: httpx.AsyncClient, provider: StandInProvider
) -> None:
    # The default (require_access_token_type = false): Keycloak and others say typ JWT.
    for typ in ("JWT", None, "at+jwt"):
        assert (await check(client, provider.token(typ=typ))).status_code == 200


async def test_a_token_signed_by_another_key_claiming_the_issuer_is_refused(
    client: httpx.AsyncClient, provider: StandInProvider
) -> None:
    forged = provider.token(key=ec_key(), algorithm="ES256")
    assert (await check(client, forged)).status_code == 401


async def test_a_rotation_at_the_provider_is_picked_up_through_the_unknown_kid(
    client: httpx.AsyncClient, provider: StandInProvider
) -> None:
    assert (await check(client, provider.token())).status_code == 200
    fetches = provider.jwks_fetches
    await asyncio.sleep(1.1)  # past the cool-down of the start-up fetch
    new_kid = provider.rotate()
    response = await check(client, provider.token(kid=new_kid))
    assert response.status_code == 200
    assert provider.jwks_fetches == fetches + 1


async def test_a_flood_of_unknown_kids_makes_at_most_one_fetch_per_cooldown(
    client: httpx.AsyncClient, provider: StandInProvider
) -> None:
    await asyncio.sleep(1.1)
    fetches = provider.jwks_fetches
    tokens = [provider.token(kid=f"made-up-{i}") for i in range(200)]
    answers = await asyncio.gather(*(check(client, t) for t in tokens))
    assert all(a.status_code == 401 for a in answers)
    assert provider.jwks_fetches - fetches <= 1


async def test_known_keys_keep_working_while_the_provider_is_down(
    app: AuthServiceApp, provider: StandInProvider, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
        provider.available = False
        assert app.runtime is not None
        await app.runtime.issuers.refresh_all()
        await app.runtime.issuers.refresh_all()
        response = await check(client, provider.token())
        assert response.status_code == 200
        metrics = (await client.get("/metrics")).text
    warnings = [r for r in caplog.records if "cannot fetch the keys" in r.getMessage()]
    assert len(warnings) == 1  # once per cool-down, not once per attempt
    assert warnings[0].levelname == "WARNING"
    failed = f'auth_jwks_fetches_total{{issuer="{provider.issuer}",outcome="failure"}}'
    assert failed in metrics


def test_only_usable_signature_keys_are_taken_from_a_jwks() -> None:
    idp = StandInProvider()
    try:
        document = idp.jwks()
        good = document["keys"][0]
        document["keys"] += [
            {**good, "kid": "for-encryption", "use": "enc"},
            {**good, "kid": "verify-not-allowed", "key_ops": ["encrypt"]},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {**good, "kid": "private", "d": "AAAA"},
            {**good, "kid": "wrong-alg", "alg": "HS256"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not a key",
        ]
        keys = usable_keys(document, ("RS256",))
        assert set(keys) == {good["kid"]}
        assert keys[good["kid"]].algorithms == {"RS256"}
        assert usable_keys(document, ("ES256",)) == {}
        assert usable_keys({"keys": "nope"}, ("RS256",)) == {}
    finally:
        idp.close()


def test_sigusr1_refreshes_every_issuer(
    database_url: str, serve: Callable[..., Served], provider: StandInProvider, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "auth.toml", provider)
    served = serve(
        AUTH_DATABASE_URL=database_url, AUTH_CONFIG=str(config), AUTH_JWKS_COOLDOWN_SECONDS="3600"
    )
    before = provider.jwks_fetches
    os.kill(served.process.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while provider.jwks_fetches == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert provider.jwks_fetches == before + 1
    response = httpx.get(
        served.url + VALIDATE, headers={"Authorization": f"Bearer {provider.token()}"}
    )
    assert response.status_code == 200
    assert json.loads(response.text or "{}") == {}
