"""``/token`` and ``/revoke`` over HTTP against the real PostgreSQL: client authentication,
codes (single use, bound, PKCE), refresh rotation bound to client and resource, revocation."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import jwt
import pytest
import pytest_asyncio

from auth_service.app import AuthServiceApp

from .oauth_flow import (
    ISSUER,
    REDIRECT,
    RESOURCE,
    authorize_params,
    exchange,
    get_code,
    issuer_client,
    module_database,
    module_settings,
    pkce,
    register,
    started,
)

# One service and database for the module (each test registers clients of its own); a fresh
# browser (cookie jar) per test.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def database_url(server_url: str) -> Iterator[str]:
    yield from module_database(server_url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AuthServiceApp]:
    settings = module_settings(database_url, tmp_path_factory.mktemp("oauth"))
    async with started(settings) as application:
        yield application


@pytest_asyncio.fixture(loop_scope="module")
async def client(app: AuthServiceApp) -> AsyncIterator[httpx.AsyncClient]:
    async with issuer_client(app) as c:
        yield c


@pytest.mark.usefixtures("alice")
async def test_the_whole_flow_issues_a_token_for_the_resource(client: httpx.AsyncClient) -> None:
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


async def _tokens(
    client: httpx.AsyncClient, registered: dict[str, Any], **auth: Any
) -> dict[str, Any]:
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    answer = await exchange(client, code, verifier, registered["client_id"], **auth)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _basic(client_id: str, secret: str, *, encode_all: bool = False) -> str:
    """RFC 6749 §2.3.1: percent-encode, then Basic (every character, to prove decoding)."""

    def encode(text: str) -> str:
        return "".join(f"%{b:02X}" for b in text.encode()) if encode_all else quote(text, safe="")

    raw = f"{encode(client_id)}:{encode(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


async def _revoked(database_url: str, session_id: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(
            await conn.fetchval("SELECT 1 FROM revocations WHERE session_id = $1", session_id)
        )
    finally:
        await conn.close()


def _sid(access_token: str) -> str:
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


@pytest.fixture
def alice() -> None:
    """alice and mallory exist (``module_database``)."""


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("encode_all", [False, True])
async def test_client_secret_basic_is_percent_decoded_and_may_repeat_the_id(
    client: httpx.AsyncClient, encode_all: bool
) -> None:
    registered = await register(client, token_endpoint_auth_method="client_secret_basic")
    secret = registered["client_secret"]
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    answer = await client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": registered["client_id"],  # the MCP SDK sends it beside Basic
        },
        headers={"Authorization": _basic(registered["client_id"], secret, encode_all=encode_all)},
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.usefixtures("alice")
async def test_client_secret_post_works_and_the_database_holds_only_a_hash(
    client: httpx.AsyncClient, database_url: str
) -> None:
    registered = await register(client, token_endpoint_auth_method="client_secret_post")
    await _tokens(client, registered, client_secret=registered["client_secret"])
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT secret_hash, metadata::text AS m FROM oauth_clients WHERE client_id = $1",
            registered["client_id"],
        )
    finally:
        await conn.close()
    assert registered["client_secret"].encode() not in row["secret_hash"]
    assert registered["client_secret"] not in row["m"]


@pytest.mark.parametrize(
    ("method", "auth"),
    [
        ("client_secret_basic", "wrong secret"),
        ("client_secret_basic", "no secret"),  # a confidential client posing as public
        ("client_secret_basic", "secret in the form"),  # not its registered method
        ("client_secret_post", "wrong secret"),
        ("none", "unknown id"),
        ("none", "malformed basic"),
    ],
)
async def test_failed_client_authentication_is_401_with_a_basic_challenge(
    client: httpx.AsyncClient, method: str, auth: str
) -> None:
    registered = await register(client, token_endpoint_auth_method=method)
    client_id = registered["client_id"]
    form = {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT}
    headers = {}
    if auth == "wrong secret" and method == "client_secret_basic":
        headers["Authorization"] = _basic(client_id, "nope")
    elif auth == "wrong secret":
        form.update(client_id=client_id, client_secret="nope")
    elif auth == "no secret":
        form["client_id"] = client_id
    elif auth == "secret in the form":
        form.update(client_id=client_id, client_secret=registered["client_secret"])
    elif auth == "unknown id":
        form["client_id"] = "oc_unknown"
    else:
        headers["Authorization"] = "Basic !!!"
    answer = await client.post("/token", data=form, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Basic realm="auth-service"'
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["cache-control"] == "no-store"


async def test_two_authentication_methods_at_once_are_refused(client: httpx.AsyncClient) -> None:
    registered = await register(client, token_endpoint_auth_method="client_secret_basic")
    secret = registered["client_secret"]
    answer = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_secret": secret},
        headers={"Authorization": _basic(registered["client_id"], secret)},
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    other = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "oc_other"},
        headers={"Authorization": _basic(registered["client_id"], secret)},
    )
    assert (other.status_code, other.json()["error"]) == (400, "invalid_request")


@pytest.mark.usefixtures("alice")
async def test_a_reused_code_is_refused_and_revokes_what_it_became(
    client: httpx.AsyncClient, database_url: str
) -> None:
    registered = await register(client)
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    first = await exchange(client, code, verifier, registered["client_id"])
    assert first.status_code == 200
    tokens = first.json()
    assert not await _revoked(database_url, _sid(tokens["access_token"]))
    again = await exchange(client, code, verifier, registered["client_id"])
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert await _revoked(database_url, _sid(tokens["access_token"]))
    refresh = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": registered["client_id"],
        },
    )
    assert (refresh.status_code, refresh.json()["error"]) == (400, "invalid_grant")


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_verifier": "a" * 43}, "invalid_grant"),
        ({"code_verifier": "short"}, "invalid_request"),
        ({"code_verifier": ""}, "invalid_request"),
        ({"redirect_uri": "http://127.0.0.1:44444/callback"}, "invalid_grant"),
        ({"redirect_uri": ""}, "invalid_request"),
        ({"resource": "https://mcp.example.com/other"}, "invalid_target"),
        ({"resource": "https://mcp.example.com/mcp#x"}, "invalid_target"),
        ({"code": "not-a-code"}, "invalid_grant"),
        ({"code": ""}, "invalid_request"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "invalid_request"),
    ],
)
async def test_a_code_is_bound_to_what_the_token_request_repeats(
    client: httpx.AsyncClient, change: dict[str, str], error: str
) -> None:
    registered = await register(client)
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": registered["client_id"],
        **change,
    }
    answer = await client.post("/token", data={k: v for k, v in form.items() if v != ""})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error
    # A refused exchange leaves the code usable by its rightful holder.
    if error != "invalid_grant" or "code" not in change:
        ok = await exchange(client, code, verifier, registered["client_id"])
        assert ok.status_code == 200, ok.text


@pytest.mark.usefixtures("alice")
async def test_a_code_is_refused_for_another_client_and_after_it_expires(
    client: httpx.AsyncClient, database_url: str
) -> None:
    registered = await register(client)
    intruder = await register(client)
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    stolen = await exchange(client, code, verifier, intruder["client_id"])
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    conn = await asyncpg.connect(database_url)
    try:  # the clock passes the code's 60 s
        await conn.execute("UPDATE oauth_codes SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    late = await exchange(client, code, verifier, registered["client_id"])
    assert (late.status_code, late.json()["error"]) == (400, "invalid_grant")
    assert "expired" in late.json()["error_description"]


@pytest.mark.usefixtures("alice")
async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(
    client: httpx.AsyncClient, database_url: str
) -> None:
    registered = await register(client)
    tokens = await _tokens(client, registered)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": registered["client_id"],
        "resource": RESOURCE,  # the MCP SDK repeats it on refresh
    }
    first = await client.post("/token", data=form)
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    claims = jwt.decode(rotated["access_token"], options={"verify_signature": False})
    assert (claims["aud"], claims["scope"]) == (RESOURCE, "mcp:read")
    assert claims["sid"] == _sid(tokens["access_token"])
    reuse = await client.post("/token", data=form)
    assert (reuse.status_code, reuse.json()["error"]) == (400, "invalid_grant")
    assert await _revoked(database_url, claims["sid"])
    newest = await client.post("/token", data={**form, "refresh_token": rotated["refresh_token"]})
    assert (newest.status_code, newest.json()["error"]) == (400, "invalid_grant")


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"client": "other"}, "invalid_grant"),
        ({"resource": "https://mcp.example.com/other"}, "invalid_target"),
        ({"scope": "mcp:read mcp:write"}, "invalid_scope"),
        ({"refresh_token": "unknown"}, "invalid_grant"),
    ],
)
async def test_a_refresh_token_is_bound_to_its_client_resource_and_scopes(
    client: httpx.AsyncClient, change: dict[str, str], error: str
) -> None:
    registered = await register(client)
    other = await register(client)
    tokens = await _tokens(client, registered)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": registered["client_id"],
    }
    if change.pop("client", None):
        form["client_id"] = other["client_id"]
    form.update(change)
    refused = await client.post("/token", data=form)
    assert (refused.status_code, refused.json()["error"]) == (400, error)
    # Refused before the rotation: the rightful client's token still works.
    ok = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": registered["client_id"],
            "scope": "mcp:read",  # narrowing is allowed
        },
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.usefixtures("alice")
async def test_an_oauth_refresh_token_is_not_a_login_refresh_token(
    client: httpx.AsyncClient,
) -> None:
    tokens = await _tokens(client, await register(client))
    answer = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.usefixtures("alice")
async def test_no_refresh_token_without_the_refresh_grant(client: httpx.AsyncClient) -> None:
    tokens = await _tokens(client, await register(client, grant_types=["authorization_code"]))
    assert "refresh_token" not in tokens


@pytest.mark.usefixtures("alice")
@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
async def test_revocation_ends_the_session_of_either_token(
    client: httpx.AsyncClient, database_url: str, kind: str
) -> None:
    registered = await register(client)
    tokens = await _tokens(client, registered)
    other = await register(client)
    foreign = await client.post(
        "/revoke", data={"token": tokens[kind], "client_id": other["client_id"]}
    )
    assert foreign.status_code == 200  # RFC 7009 §2.2, but nothing happened:
    assert not await _revoked(database_url, _sid(tokens["access_token"]))
    answer = await client.post(
        "/revoke",
        data={"token": tokens[kind], "token_type_hint": kind, "client_id": registered["client_id"]},
    )
    assert answer.status_code == 200
    assert answer.content == b""
    assert await _revoked(database_url, _sid(tokens["access_token"]))
    refresh = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": registered["client_id"],
        },
    )
    assert refresh.json()["error"] == "invalid_grant"


async def test_revocation_refusals(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    unknown = await client.post(
        "/revoke", data={"token": "whatever", "client_id": registered["client_id"]}
    )
    assert unknown.status_code == 200
    missing = await client.post("/revoke", data={"client_id": registered["client_id"]})
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    anonymous = await client.post("/revoke", data={"token": "whatever"})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
    assert anonymous.headers["www-authenticate"] == 'Basic realm="auth-service"'


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("grant_type=refresh_token&grant_type=authorization_code", None, 400),
        ('{"grant_type": "refresh_token"}', "application/json", 415),
        ("grant_type=" + "x" * 9000, None, 413),
    ],
)
async def test_malformed_token_requests_are_json_4xx(
    client: httpx.AsyncClient, body: str, content_type: str | None, status: int
) -> None:
    answer = await client.post(
        "/token",
        content=body,
        headers={"Content-Type": content_type or "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "error_description", "request_id"}


async def test_a_code_of_an_account_disabled_since_is_refused(
    client: httpx.AsyncClient, database_url: str
) -> None:
    registered = await register(client)
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET disabled = true WHERE username = 'alice'")
        answer = await exchange(client, code, verifier, registered["client_id"])
        sessions = await conn.fetchval(
            "SELECT count(*) FROM sessions WHERE client_id = $1", registered["client_id"]
        )
    finally:
        await conn.execute("UPDATE users SET disabled = false WHERE username = 'alice'")
        await conn.close()
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert sessions == 0


@pytest.mark.usefixtures("alice")
async def test_two_concurrent_exchanges_of_one_code_do_not_both_succeed(
    client: httpx.AsyncClient, database_url: str
) -> None:
    registered = await register(client)
    verifier, challenge = pkce()
    code = await get_code(client, authorize_params(registered["client_id"], challenge))
    answers = await asyncio.gather(
        *(exchange(client, code, verifier, registered["client_id"]) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
    winner = next(a for a in answers if a.status_code == 200).json()
    # The losers were reuse: what the code became is revoked too.
    assert await _revoked(database_url, _sid(winner["access_token"]))
