"""A client that never registered: its ``client_id`` is the https URL of its metadata document,
served by a real HTTPS server, and the authorization server fetches it at /authorize.

The document server is on 127.0.0.1, so these services allow private addresses and trust the
test CA (``AUTH_OAUTH_CIMD_ALLOW_PRIVATE``, ``AUTH_OAUTH_CIMD_CA_FILE``), except where the
point is that, by default, such an address is refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import create_app
from auth_service.settings import Settings
from tests.tls import DocumentServer, LocalCA, Reply, make_local_ca

from .conftest import create_user
from .oauth_flow import (
    ISSUER,
    REDIRECT,
    RESOURCE,
    authorize_params,
    exchange,
    get_code,
    issuer_client,
    oauth_settings,
    pkce,
    to_consent,
)

PATH = "/apps/desk/client.json"


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def documents(local_ca: LocalCA) -> Iterator[DocumentServer]:
    server = DocumentServer(local_ca).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client_id(documents: DocumentServer) -> str:
    url = documents.url(PATH)
    documents.replies[PATH] = Reply(
        body=json.dumps(
            {
                "client_id": url,
                "client_name": "Desk App",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        ).encode()
    )
    return url


@pytest.fixture
def make_oauth_settings(
    make_settings: Callable[..., Settings], tmp_path: Path, local_ca: LocalCA
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values = {
            "oauth_cimd_allow_private": True,
            "oauth_cimd_ca_file": local_ca.ca_file,
            **overrides,
        }
        return oauth_settings(make_settings, tmp_path, **values)

    return make


@pytest.fixture
async def alice(database_url: str) -> None:
    await create_user(database_url, "alice")


@asynccontextmanager
async def _served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the service started with ``settings`` (its lifespan entered)."""
    app = create_app(settings, configure_logs=False)
    async with LifespanManager(app, startup_timeout=30), issuer_client(app) as client:
        yield client


@pytest.mark.usefixtures("alice")
async def test_a_client_known_only_by_its_document_gets_a_token(
    make_oauth_settings: Callable[..., Settings], client_id: str, documents: DocumentServer
) -> None:
    async with _served(make_oauth_settings()) as client:
        verifier, challenge = pkce()
        params = authorize_params(client_id, challenge)
        consent = await to_consent(client, params)
        assert consent.status_code == 200, consent.text
        # The person is told where the name comes from: the document's host, not its claim.
        assert "Desk App" in consent.text and "localhost" in consent.text
        code = await get_code(client, params)
        answer = await exchange(client, code, verifier, client_id)
        assert answer.status_code == 200, answer.text
        claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
        assert (claims["client_id"], claims["aud"], claims["iss"]) == (client_id, RESOURCE, ISSUER)
        refreshed = await client.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": answer.json()["refresh_token"],
                "client_id": client_id,
                "resource": RESOURCE,
            },
        )
        assert refreshed.status_code == 200, refreshed.text
    # Fetched once: every later look-up (resume, consent, token, refresh) used the stored copy.
    assert documents.hits[PATH] == 1


@pytest.mark.parametrize(
    ("overrides", "document"),
    [
        ({"oauth_cimd": False}, None),  # documents not accepted
        ({"oauth_cimd_allow_private": False}, None),  # the default: no loopback address
        ({}, {"client_secret": "s"}),  # a document that claims a secret
        ({}, {"redirect_uris": ["https://elsewhere.example/cb"]}),  # not our redirect URI
    ],
    ids=["cimd-off", "private-address", "secret", "other-redirect"],
)
async def test_a_document_client_that_cannot_be_used_gets_the_page_not_a_redirect(
    make_oauth_settings: Callable[..., Settings],
    client_id: str,
    documents: DocumentServer,
    overrides: dict[str, Any],
    document: dict[str, Any] | None,
) -> None:
    if document is not None:
        body = json.loads(documents.replies[PATH].body)
        documents.replies[PATH] = Reply(body=json.dumps(body | document).encode())
    async with _served(make_oauth_settings(**overrides)) as client:
        _, challenge = pkce()
        answer = await client.get("/authorize", params=authorize_params(client_id, challenge))
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert "This sign-in link is not valid" in answer.text


async def test_the_server_metadata_says_whether_documents_are_accepted(
    make_oauth_settings: Callable[..., Settings],
) -> None:
    for accepted in (True, False):
        async with _served(make_oauth_settings(oauth_cimd=accepted)) as client:
            metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
            assert metadata["client_id_metadata_document_supported"] is accepted
