"""POST /api/v1/auth/login: tokens for the right password, one generic 401 otherwise."""

from __future__ import annotations

import json
import re

import asyncpg
import httpx
import jwt
import pytest

from auth_service.app import AuthServiceApp

from .conftest import PASSWORD, create_user

LOGIN = "/api/v1/auth/login"


async def test_login_returns_a_bearer_token(client: httpx.AsyncClient, database_url: str) -> None:
    await create_user(database_url, "alice", groups=("admins", "dev"))
    response = await client.post(LOGIN, json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["preferred_username"] == "alice"
    assert claims["groups"] == ["admins", "dev"]
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"


async def test_wrong_password_unknown_user_and_disabled_user_look_the_same(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    await create_user(database_url, "bob")
    conn = await asyncpg.connect(database_url)
    await conn.execute("UPDATE users SET disabled = true WHERE username = 'bob'")
    await conn.close()

    wrong = await client.post(LOGIN, json={"username": "alice", "password": "not it"})
    unknown = await client.post(LOGIN, json={"username": "mallory", "password": "not it"})
    disabled = await client.post(LOGIN, json={"username": "bob", "password": PASSWORD})
    for response in (wrong, unknown, disabled):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_credentials"
        assert "access_token" not in response.text
    assert wrong.content == unknown.content == disabled.content


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"username": "alice"}', "application/json", 422),
        (b'{"username": 5, "password": "x"}', "application/json", 422),
        (b'{"username": "", "password": "x"}', "application/json", 422),
        (b'{"username": "a", "password": "x"}', "text/plain", 415),
        (b"\xff\xfe\x00", "application/json", 400),
        (b"[" * 100_000, "application/json", 413),
        (b'{"username": "a", "password": "' + b"x" * 9000 + b'"}', "application/json", 413),
        (b"[" * 3000 + b"]" * 3000, "application/json", 400),
    ],
)
async def test_malformed_input_is_a_json_4xx(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    response = await client.post(LOGIN, content=content, headers={"content-type": content_type})
    assert response.status_code == status
    body = response.json()
    assert body["error"] and body["error_description"]
    assert body["request_id"] == response.headers["x-request-id"]


async def test_login_is_audited(
    client: httpx.AsyncClient, database_url: str, app: AuthServiceApp
) -> None:
    await create_user(database_url, "alice")
    await client.post(LOGIN, json={"username": "alice", "password": PASSWORD})
    failed = await client.post(LOGIN, json={"username": "alice", "password": "nope"})
    conn = await asyncpg.connect(database_url)
    rows = await conn.fetch(
        "SELECT event, outcome, username, request_id FROM audit_log ORDER BY id"
    )
    await conn.close()
    assert [(r["event"], r["outcome"], r["username"]) for r in rows] == [
        ("login", "success", "alice"),
        ("login", "failure", "alice"),
    ]
    assert rows[1]["request_id"] == failed.headers["x-request-id"]


@pytest.mark.parametrize("name", ["a\u0000b", "tab\there", "x" * 100 + "\u0000", "caf\u00e9\u0000"])
async def test_names_no_user_can_have_fail_like_unknown_names(
    client: httpx.AsyncClient, database_url: str, name: str
) -> None:
    await create_user(database_url, "alice")
    unknown = await client.post(LOGIN, json={"username": "mallory", "password": "x"})
    response = await client.post(LOGIN, json={"username": name, "password": "x"})
    assert response.status_code == 401
    assert response.content == unknown.content


@pytest.mark.parametrize(
    "typed",
    [
        "Tr0ub4dor-and-3",  # could be a name: looked up, and it is no one's
        "correct horse battery staple",  # could not: never looked up
    ],
)
async def test_a_password_typed_as_the_username_is_recorded_nowhere(
    client: httpx.AsyncClient, database_url: str, typed: str
) -> None:
    """Issue 16, L7: the audit trail and the throttle keep a keyed digest of a name that is
    no user's, never the name; a real user's name is kept as it is."""
    await create_user(database_url, "alice")
    await client.post(LOGIN, json={"username": typed, "password": "alice's password"})
    await client.post(LOGIN, json={"username": typed, "password": "alice's password"})
    await client.post(LOGIN, json={"username": "alice", "password": "wrong"})
    conn = await asyncpg.connect(database_url)
    try:
        audit = await conn.fetch("SELECT username, detail::text FROM audit_log ORDER BY id")
        throttle_rows = await conn.fetch("SELECT key, account FROM login_throttle")
    finally:
        await conn.close()
    stored = repr([tuple(r) for r in audit]) + repr([tuple(r) for r in throttle_rows])
    assert typed not in stored and typed.lower() not in stored
    assert [row["username"] for row in audit] == [None, None, "alice"]
    hashes = [json.loads(row["detail"]).get("name_hash") for row in audit]
    assert hashes[0] == hashes[1] and re.fullmatch(r"[0-9a-f]{12}", hashes[0])
    assert hashes[2] is None
