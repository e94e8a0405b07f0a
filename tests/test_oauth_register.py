"""``POST /register`` (RFC 7591): the redirect URI matrix, public and confidential clients,
the three registration modes and the throttle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from auth_service.app import AuthServiceApp

from .oauth_flow import REDIRECT, issuer_client, module_database, module_settings, started

# One service and database for the module; tests of other settings start their own.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def database_url(server_url: str) -> Iterator[str]:
    yield from module_database(server_url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AuthServiceApp]:
    async with started(module_settings(database_url, tmp_path_factory.mktemp("oauth"))) as a:
        yield a


@pytest_asyncio.fixture(loop_scope="module")
async def client(app: AuthServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    async with issuer_client(app) as c:
        yield c


@asynccontextmanager
async def client_of(
    database_url: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a service with other settings, on the module's database."""
    async with (
        started(module_settings(database_url, tmp_path, **overrides)) as app,
        issuer_client(app) as client,
    ):
        yield client


async def test_a_public_client_as_the_mcp_sdk_registers_it(client: httpx.AsyncClient) -> None:
    sent = {
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "probe",
        "scope": "mcp:read offline_access",
        "application_type": "native",
        "software_id": "ignored member",
    }
    answer = await client.post("/register", json=sent)
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["client_id"].startswith("oc_")
    assert isinstance(body["client_id_issued_at"], int)
    del body["client_id"], body["client_id_issued_at"]
    assert body == {
        "client_name": "probe",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "scope": "mcp:read offline_access",
    }


async def test_an_omitted_method_means_basic_with_a_secret_shown_once(
    client: httpx.AsyncClient, database_url: str
) -> None:
    answer = await client.post("/register", json={"redirect_uris": ["https://app.example/cb"]})
    assert answer.status_code == 201
    body = answer.json()
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["client_secret_expires_at"] == 0
    assert body["grant_types"] == ["authorization_code"]
    secret = body["client_secret"]
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT secret_hash, metadata::text AS metadata FROM oauth_clients "
            "WHERE client_id = $1",
            body["client_id"],
        )
    finally:
        await conn.close()
    assert secret not in row["metadata"] and secret.encode() not in row["secret_hash"]


@pytest.mark.parametrize(
    ("uris", "error"),
    [
        (["https://app.example/cb"], None),
        (["http://127.0.0.1/cb", "http://[::1]:9/cb", "http://localhost:1/cb"], None),
        (["http://app.example/cb"], "invalid_redirect_uri"),
        (["https://app.example/cb#f"], "invalid_redirect_uri"),
        (["https://u:p@app.example/cb"], "invalid_redirect_uri"),
        (["javascript:alert(1)"], "invalid_redirect_uri"),
        (["cursor://anysphere/cb"], "invalid_redirect_uri"),
        (["/relative"], "invalid_redirect_uri"),
        ([], "invalid_client_metadata"),
        ("https://app.example/cb", "invalid_client_metadata"),
        ([1], "invalid_client_metadata"),
        ([f"https://app.example/{i}" for i in range(11)], "invalid_client_metadata"),
    ],
)
async def test_redirect_uris(client: httpx.AsyncClient, uris: Any, error: str | None) -> None:
    answer = await client.post("/register", json={"redirect_uris": uris})
    if error is None:
        assert answer.status_code == 201, answer.text
        assert answer.json()["redirect_uris"] == uris
    else:
        assert answer.status_code == 400
        assert answer.json()["error"] == error
        assert set(answer.json()) == {"error", "error_description", "request_id"}


@pytest.mark.parametrize(
    "metadata",
    [
        {"grant_types": ["client_credentials"]},
        {"grant_types": ["refresh_token"]},
        {"grant_types": ["implicit", "authorization_code"]},
        {"response_types": ["token"]},
        {"token_endpoint_auth_method": "private_key_jwt"},
        {"jwks_uri": "https://app.example/jwks"},
        {"jwks": {"keys": []}},
        {"software_statement": "eyJ..."},
        {"client_name": "x" * 101},
        {"client_name": "line\nbreak"},
        {"client_name": 7},
        {"scope": 'bad"scope'},
        {"application_type": "desktop"},
    ],
)
async def test_invalid_client_metadata(client: httpx.AsyncClient, metadata: dict[str, Any]) -> None:
    answer = await client.post("/register", json={"redirect_uris": [REDIRECT], **metadata})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("[]", "application/json", 400),
        ("{", "application/json", 400),
        ("redirect_uris=x", "application/x-www-form-urlencoded", 415),
        ('{"redirect_uris": ["' + "x" * 17_000 + '"]}', "application/json", 413),
    ],
)
async def test_unreadable_bodies(
    client: httpx.AsyncClient, body: str, content_type: str, status: int
) -> None:
    answer = await client.post("/register", content=body, headers={"content-type": content_type})
    assert answer.status_code == status
    assert "error" in answer.json()


async def test_closed_registration(database_url: str, tmp_path: Path) -> None:
    async with client_of(database_url, tmp_path, oauth_registration="closed") as client:
        answer = await client.post("/register", json={"redirect_uris": [REDIRECT]})
        assert (answer.status_code, answer.json()["error"]) == (403, "access_denied")
        metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
        assert "registration_endpoint" not in metadata


async def test_token_registration(database_url: str, tmp_path: Path) -> None:
    async with client_of(
        database_url,
        tmp_path,
        oauth_registration="token",
        oauth_registration_token="initial-access-token-1",
    ) as client:
        for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            answer = await client.post(
                "/register", json={"redirect_uris": [REDIRECT]}, headers=header
            )
            assert answer.status_code == 401
            assert answer.json()["error"] == "invalid_token"
            assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        ok = await client.post(
            "/register",
            json={"redirect_uris": [REDIRECT]},
            headers={"Authorization": "Bearer initial-access-token-1"},
        )
        assert ok.status_code == 201


async def test_registration_is_throttled_per_address(database_url: str, tmp_path: Path) -> None:
    # A client address of its own behind the trusted proxy (the module registers from others).
    one = {"X-Forwarded-For": "198.51.100.7"}
    body = {"redirect_uris": [REDIRECT]}
    async with client_of(database_url, tmp_path, oauth_register_per_address=2) as client:
        for _ in range(2):
            assert (await client.post("/register", json=body, headers=one)).status_code == 201
        answer = await client.post("/register", json=body, headers=one)
        assert (answer.status_code, answer.json()["error"]) == (429, "too_many_attempts")
        assert answer.headers["retry-after"] == "3600"
        other = await client.post("/register", json=body, headers={"X-Forwarded-For": "192.0.2.9"})
        assert other.status_code == 201  # another client behind the trusted proxy


async def test_a_private_use_scheme_when_allowed(database_url: str, tmp_path: Path) -> None:
    async with client_of(database_url, tmp_path, oauth_redirect_schemes="cursor") as client:
        answer = await client.post("/register", json={"redirect_uris": ["cursor://anysphere/cb"]})
        assert answer.status_code == 201
