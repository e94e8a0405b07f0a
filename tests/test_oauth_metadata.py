"""The authorization-server metadata (RFC 8414) at both well-known URLs, exactly; OAuth off
by default for an issuer clients could not use, with one warning line; and the settings that
change what the server answers (each test here starts a service of its own)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import AuthServiceApp, create_app
from auth_service.runtime import reload_config
from auth_service.settings import Settings

from .conftest import create_user
from .oauth_flow import (
    authorize_params,
    exchange,
    get_code,
    issuer_client,
    oauth_settings,
    pkce,
    register,
)


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], tmp_path: Path, overrides: dict[str, Any]
) -> Settings:
    return oauth_settings(make_settings, tmp_path, **overrides)


@pytest.fixture
async def client(app: AuthServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    async with issuer_client(app) as c:
        yield c


EXPECTED = {
    "issuer": "https://auth.example",
    "authorization_endpoint": "https://auth.example/authorize",
    "token_endpoint": "https://auth.example/token",
    "jwks_uri": "https://auth.example/.well-known/jwks.json",
    "registration_endpoint": "https://auth.example/register",
    "scopes_supported": ["mcp:read", "mcp:write", "offline_access"],
    "response_types_supported": ["code"],
    "response_modes_supported": ["query"],
    "grant_types_supported": ["authorization_code", "refresh_token"],
    "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
    "revocation_endpoint": "https://auth.example/revoke",
    "revocation_endpoint_auth_methods_supported": [
        "none",
        "client_secret_basic",
        "client_secret_post",
    ],
    "code_challenge_methods_supported": ["S256"],
    "authorization_response_iss_parameter_supported": True,
    # https client_ids are accepted by default (AUTH_OAUTH_CIMD, oauth/client_documents.py).
    "client_id_metadata_document_supported": True,
}


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
async def test_the_document_is_exact_at_both_urls(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 200
    assert answer.json() == EXPECTED
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["cache-control"] == "public, max-age=300"


@pytest.mark.parametrize("overrides", [{"oauth_cimd": False}])
async def test_metadata_documents_off(client: httpx.AsyncClient) -> None:
    answer = await client.get("/.well-known/oauth-authorization-server")
    assert answer.json()["client_id_metadata_document_supported"] is False


async def test_no_trailing_slash_redirects(client: httpx.AsyncClient) -> None:
    # MCP clients follow no redirect across the metadata and endpoint URLs.
    answer = await client.get("/.well-known/oauth-authorization-server/")
    assert answer.status_code == 404


async def test_off_for_a_non_canonical_issuer_with_one_warning(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = oauth_settings(make_settings, tmp_path, public_url="https://Auth.example")
    caplog.set_level(logging.WARNING, logger="auth_service.app")
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://auth.example") as c:
            for path in ("/.well-known/oauth-authorization-server", "/authorize", "/register"):
                assert (await c.get(path)).status_code in (404, 405)
    warnings = [r.getMessage() for r in caplog.records if "OAuth" in r.getMessage()]
    assert len(warnings) == 1
    assert "not canonical, use https://auth.example" in warnings[0]


@pytest.mark.parametrize("overrides", [{"oauth_enabled": False}])
async def test_explicitly_off(client: httpx.AsyncClient) -> None:
    assert (await client.get("/.well-known/openid-configuration")).status_code == 404


@pytest.mark.parametrize("overrides", [{"oauth_access_token_ttl_seconds": 120}])
async def test_oauth_access_tokens_have_their_own_lifetime(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "alice")
    registered = await register(client)
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    answer = await exchange(client, code, verifier, registered["client_id"])
    assert answer.json()["expires_in"] == 120
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


async def test_a_reload_swaps_the_resources(
    client: httpx.AsyncClient, app: AuthServiceApp, settings: Settings
) -> None:
    assert settings.config is not None and app.runtime is not None
    settings.config.write_text(
        '[[resources]]\nurl = "https://other.example.com/mcp"\nscopes = ["tickets"]\n'
    )
    assert reload_config(app.runtime)
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["scopes_supported"] == ["tickets", "offline_access"]
    assert app.runtime.resources.get("https://other.example.com/mcp") is not None
    assert app.runtime.resources.get("https://mcp.example.com/mcp") is None
