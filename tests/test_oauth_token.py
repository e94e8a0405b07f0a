"""``/token`` and ``/revoke`` over HTTP against the real PostgreSQL: client authentication,
codes (single use, bound, PKCE), refresh rotation bound to client and resource, revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import jwt
import pytest

from auth_service.app import AuthServiceApp
from auth_service.settings import Settings

from .conftest import create_user
from .oauth_flow import (
    ISSUER,
    RESOURCE,
    authorize_params,
    exchange,
    get_code,
    issuer_client,
    oauth_settings,
    pkce,
    register,
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return oauth_settings(make_settings, tmp_path)


@pytest.fixture
async def client(app: AuthServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    async with issuer_client(app) as c:
        yield c


async def test_the_whole_flow_issues_a_token_for_the_resource(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    registered = await register(client)
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    answer = await exchange(client, code, verifier, registered["client_id"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "mcp:read offline_access"
    assert answer.headers["cache-control"] == "no-store"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == RESOURCE
    assert claims["iss"] == ISSUER
    assert claims["client_id"] == registered["client_id"]
    assert claims["scope"] == "mcp:read"
    assert body["refresh_token"]
