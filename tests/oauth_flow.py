"""Helpers for the authorization-server tests: a service with OAuth on, registration, PKCE,
and a person at a browser (httpx with its cookie jar) signing in and answering the consent."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from asgi_lifespan import LifespanManager

from auth_service.app import AuthServiceApp, create_app
from auth_service.settings import Settings

from .conftest import (
    PASSWORD,
    TEST_KEK,
    create_user,
    drop_database,
    new_database,
)

ISSUER = "https://auth.example"
RESOURCE = "https://mcp.example.com/mcp"
REDIRECT = "http://127.0.0.1:33333/callback"
CONFIG = f"""
[[rules]]
id = "mcp-write"
host = "mcp.example.com"
path = "/mcp/admin/**"
scopes = ["mcp:write"]

[[resources]]
url = "{RESOURCE}"
name = "Orders MCP"
scopes = ["mcp:read", "mcp:write"]
rules = ["mcp-write"]
"""


def oauth_settings(
    make_settings: Callable[..., Settings], tmp_path: Path, config: str = CONFIG, **overrides: Any
) -> Settings:
    """Settings with OAuth on: an https issuer, a configured resource."""
    path = tmp_path / "auth.toml"
    path.write_text(config)
    return make_settings(**{"public_url": ISSUER, "config": path, **overrides})


@asynccontextmanager
async def issuer_client(app: AuthServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the issuer's origin (https: the Secure cookies come back)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as c:
        yield c


def pkce() -> tuple[str, str]:
    """A verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)[:100]
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def register(client: httpx.AsyncClient, **metadata: Any) -> dict[str, Any]:
    body = {
        "client_name": "Probe",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        **metadata,
    }
    answer = await client.post("/register", json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def authorize_params(client: str, challenge: str, **overrides: str | None) -> dict[str, str]:
    """An authorization request as the MCP SDK makes it; ``overrides`` (None: left out)."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client,
        "redirect_uri": REDIRECT,
        "state": "st-" + secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": RESOURCE,
        "scope": "mcp:read offline_access",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name}"
    return match.group(1).replace("&amp;", "&").replace("&quot;", '"')


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def sign_in(client: httpx.AsyncClient, rd: str, username: str = "alice") -> httpx.Response:
    """The login form, as a person fills it in (its CSRF token, our Origin)."""
    page = await client.get("/login", params={"rd": rd})
    assert page.status_code == 200
    return await client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD,
            "csrf_token": hidden(page.text, "csrf_token"),
            "rd": rd,
        },
        headers={"Origin": ISSUER},
    )


async def to_consent(client: httpx.AsyncClient, params: dict[str, str]) -> httpx.Response:
    """GET /authorize, signing in when sent to the form: the consent page (or whatever the
    last answer is)."""
    answer = await client.get("/authorize", params=params)
    if answer.status_code == 303 and "/login?" in answer.headers["location"]:
        rd = query_of(answer.headers["location"])["rd"]
        signed = await sign_in(client, rd)
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == ISSUER + rd
        answer = await client.get(rd)
    return answer


async def answer_consent(
    client: httpx.AsyncClient, page: httpx.Response, decision: str = "allow", **headers: str
) -> httpx.Response:
    assert page.status_code == 200, page.text
    return await client.post(
        "/authorize",
        data={
            "flow_id": hidden(page.text, "flow_id"),
            "csrf_token": hidden(page.text, "csrf_token"),
            "decision": decision,
        },
        headers={"Origin": ISSUER, **headers},
    )


async def get_code(client: httpx.AsyncClient, params: dict[str, str]) -> str:
    """The whole browser part: authorize, sign in, allow; the code from the redirect."""
    answer = await to_consent(client, params)
    if answer.status_code == 200:
        answer = await answer_consent(client, answer)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(params["redirect_uri"] + "?")
    query = query_of(location)
    assert query["iss"] == ISSUER
    assert query.get("state") == params.get("state")
    return query["code"]


async def exchange(
    client: httpx.AsyncClient, code: str, verifier: str, client_id: str, **extra: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": client_id,
        "resource": RESOURCE,
        **extra,
    }
    return await client.post("/token", data={k: v for k, v in form.items() if v != ""})


def form_url(params: dict[str, str]) -> str:
    return "/authorize?" + urlencode(params)


def module_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a module's shared service: OAuth on, the throttles out of the way (the
    tests register many clients from one address)."""
    path = tmp_path / "auth.toml"
    path.write_text(CONFIG)
    values: dict[str, Any] = {
        "database_url": database_url,
        "public_url": ISSUER,
        "config": path,
        "log_level": "DEBUG",
        "key_encryption_key": TEST_KEK,
        "oauth_register_per_address": 100_000,
        **overrides,
    }
    return Settings(**values)


def module_database(server_url: str) -> Iterator[str]:
    """A database of its own for a module's tests (they do not interfere: each registers its
    own clients), with alice and mallory."""

    async def create() -> str:
        url = await new_database(server_url, "oauth_")
        for username in ("alice", "mallory"):
            await create_user(url, username)
        return url

    url = asyncio.run(create())
    yield url
    asyncio.run(drop_database(server_url, url))


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[AuthServiceApp]:
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        yield application
