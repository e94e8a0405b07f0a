"""Sessions: refresh-token rotation, reuse detection, logout, revocation, key rotation."""

from __future__ import annotations

import asyncio
import hashlib
import time

import asyncpg
import httpx
import jwt
import pytest

from auth_service.app import AuthServiceApp
from auth_service.key_encryption import load_key_ring
from auth_service.keys import rotate_signing_key
from auth_service.sessions import RevocationList

from .conftest import PASSWORD, create_user

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
VALIDATE = "/api/v1/auth/validate"


async def login_pair(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.post(LOGIN, json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def validate(client: httpx.AsyncClient, token: object) -> httpx.Response:
    return await client.get(VALIDATE, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def alice(database_url: str) -> None:
    await create_user(database_url, "alice", groups=("staff",))


async def test_login_issues_a_refresh_token_stored_only_as_a_hash(
    client: httpx.AsyncClient, database_url: str, alice: None
) -> None:
    pair = await login_pair(client)
    refresh = str(pair["refresh_token"])
    assert len(refresh) >= 43  # 256 bits, base64url
    assert pair["refresh_expires_in"] == 7 * 86_400
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch("SELECT * FROM refresh_tokens")
        dump = str([dict(r) for r in stored]) + str(
            [dict(r) for r in await conn.fetch("SELECT * FROM sessions")]
        )
    finally:
        await conn.close()
    assert [bytes(r["token_hash"]) for r in stored] == [hashlib.sha256(refresh.encode()).digest()]
    assert refresh not in dump
    claims = jwt.decode(str(pair["access_token"]), options={"verify_signature": False})
    assert claims["sid"] == stored[0]["session_id"]


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(
    client: httpx.AsyncClient, alice: None
) -> None:
    first = await login_pair(client)
    second = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await validate(client, second["access_token"])).headers["x-auth-user"] == "alice"
    third = (await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})).json()
    assert "access_token" in third

    # The first token again: reuse. Refused, and every token of the session dies with it.
    reuse = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json()["error"] == "invalid_grant"
    assert "reuse" in reuse.json()["error_description"]
    after = await client.post(REFRESH, json={"refresh_token": third["refresh_token"]})
    assert after.status_code == 401
    for pair in (first, second, third):
        refused = await validate(client, pair["access_token"])
        assert refused.status_code == 401
        assert refused.json()["error"] == "revoked_token"


async def test_two_concurrent_refreshes_of_one_token_do_not_both_succeed(
    app: AuthServiceApp, alice: None
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
        pair = await login_pair(client)
        for _ in range(3):
            answers = await asyncio.gather(
                *(
                    client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
                    for _ in range(2)
                )
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [200, 401], statuses
            pair = next(a.json() for a in answers if a.status_code == 200)
            # The loser presented a token already used: reuse, so the session is gone.
            assert (await validate(client, pair["access_token"])).status_code == 401
            pair = await login_pair(client)


@pytest.mark.parametrize("change", ["idle", "absolute"])
async def test_refresh_tokens_expire(
    client: httpx.AsyncClient, database_url: str, alice: None, change: str
) -> None:
    pair = await login_pair(client)
    conn = await asyncpg.connect(database_url)
    try:
        if change == "idle":
            await conn.execute("UPDATE refresh_tokens SET idle_expires_at = now() - interval '1s'")
        else:
            await conn.execute("UPDATE sessions SET expires_at = now() - interval '1s'")
    finally:
        await conn.close()
    refused = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert refused.status_code == 401
    assert "expired" in refused.json()["error_description"]


async def test_refresh_of_a_session_never_outlives_its_absolute_lifetime(
    client: httpx.AsyncClient, database_url: str, alice: None
) -> None:
    pair = await login_pair(client)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE sessions SET expires_at = now() + interval '90s'")
    finally:
        await conn.close()
    refreshed = (await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})).json()
    assert refreshed["refresh_expires_in"] <= 90


@pytest.mark.parametrize("how", ["bearer", "refresh_token"])
async def test_logout_ends_the_session(client: httpx.AsyncClient, alice: None, how: str) -> None:
    pair = await login_pair(client)
    assert (await validate(client, pair["access_token"])).status_code == 200  # now cached
    if how == "bearer":
        response = await client.post(
            LOGOUT, headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
    else:
        response = await client.post(LOGOUT, json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 200
    assert response.json() == {"status": "logged_out"}
    refused = await validate(client, pair["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "revoked_token"
    again = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 401
    # Other sessions of the same user are untouched.
    other = await login_pair(client)
    assert (await validate(client, other["access_token"])).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, 415),
        ({"json": {}}, 422),
        ({"json": {"refresh_token": 5}}, 422),
        ({"json": {"refresh_token": "x" * 300}}, 422),
        ({"json": {"refresh_token": "never-issued"}}, 401),
        ({"headers": {"Authorization": "Bearer not.a.token"}}, 401),
    ],
)
async def test_logout_and_refresh_refuse_bad_input_clearly(
    client: httpx.AsyncClient, kwargs: dict[str, object], status: int
) -> None:
    for path in (REFRESH, LOGOUT):
        if path == REFRESH and "headers" in kwargs:
            continue
        response = await client.post(path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, (path, response.text)
        assert response.json()["error"]


async def test_disabled_user_cannot_refresh(
    client: httpx.AsyncClient, database_url: str, alice: None
) -> None:
    pair = await login_pair(client)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET disabled = true")
    finally:
        await conn.close()
    response = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 401


async def test_key_rotation_reaches_the_running_service(
    app: AuthServiceApp, client: httpx.AsyncClient, database_url: str, alice: None
) -> None:
    old = await login_pair(client)
    assert app.runtime is not None
    old_kid = app.runtime.keys.signing.kid
    conn = await asyncpg.connect(database_url)
    try:
        new_kid = await rotate_signing_key(
            conn, load_key_ring(app.settings), verify_for_seconds=3600
        )
    finally:
        await conn.close()
    deadline = time.monotonic() + 10
    while app.runtime.keys.signing.kid != new_kid and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert app.runtime.keys.signing.kid == new_kid
    fresh = await login_pair(client)
    assert jwt.get_unverified_header(str(fresh["access_token"]))["kid"] == new_kid
    assert (await validate(client, old["access_token"])).status_code == 200
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {old_kid, new_kid}

    # Once every token the old key signed has expired, the key leaves the JWKS.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE signing_keys SET expires_at = now() WHERE kid = $1", old_kid)
        await conn.execute("SELECT pg_notify('auth_keys', '')")
    finally:
        await conn.close()
    deadline = time.monotonic() + 10
    while old_kid in app.runtime.keys.verifying and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {new_kid}
    assert (await validate(client, old["access_token"])).status_code == 401


def test_revocation_list_forgets_entries_with_their_tokens() -> None:
    revocations = RevocationList()
    revocations.add("live", time.time() + 60)
    revocations.add("gone", time.time() - 1)  # already past: never stored
    revocations._expiry["stale"] = time.time() - 1  # as if it had expired while held
    assert "live" in revocations and "gone" not in revocations
    assert revocations.prune() == 1
    assert len(revocations) == 1
