"""Validate as an OAuth resource server (issue 15): the 401 that points an MCP client at the
metadata of the server it called, the 403 that tells it the scope it lacks, and OAuth access
tokens accepted on their own resource only (RFC 8707), cached or not.

In-process, on the real PostgreSQL; the proxy's forwarded headers are sent as a trusted proxy
would send them (the test client is 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from auth_service.app import AuthServiceApp, create_app
from auth_service.runtime import reload_config
from auth_service.settings import Settings
from auth_service.tokens import issue_access_token
from auth_service.types import User

from .conftest import create_user, login

VALIDATE = "/api/v1/auth/validate"
MCP = "https://mcp.example.com/mcp"
OTHER = "https://other.example.com/mcp"
MCP_METADATA = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
OTHER_METADATA = "https://other.example.com/.well-known/oauth-protected-resource/mcp"
CONFIG = """
[[rules]]
id = "orders-admin"
path = "/mcp/admin/**"
scopes = ["orders:write"]

[[rules]]
id = "closed"
path = "/mcp/closed/**"
allow = "deny"

[[resources]]
url = "https://mcp.example.com/mcp"
name = "Orders MCP"
scopes = ["orders:read", "orders:write"]
rules = ["orders-admin"]

[[resources]]
url = "https://other.example.com/mcp"
scopes = ["other"]
"""
REALM = 'Bearer realm="auth-service"'
ALICE = User("00000000-0000-0000-0000-0000000000a1", "alice", "", False, ("staff",), "", "")


def on(url: str, *, method: str = "GET", nginx: bool = False, **headers: str) -> dict[str, str]:
    """The forwarded headers of a request for ``url`` (Traefik's or nginx's spelling)."""
    proto, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    forwarded = {"X-Forwarded-Proto": proto, "X-Forwarded-Host": host}
    if nginx:
        forwarded |= {"X-Original-URI": "/" + path, "X-Original-Method": method}
    else:
        forwarded |= {"X-Forwarded-Uri": "/" + path, "X-Forwarded-Method": method}
    return {**forwarded, "Accept": "application/json", **headers}


async def _started(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, configure_logs=False)
    async with LifespanManager(application, startup_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
            c.app = application  # type: ignore[attr-defined]
            yield c


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "auth.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
async def oauth(
    make_settings: Callable[..., Settings], config_file: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The service with OAuth on (an https issuer) and the resources of ``CONFIG``."""
    settings = make_settings(public_url="https://auth.example.com", config=str(config_file))
    assert settings.oauth_active
    async for client in _started(settings):
        yield client


def oauth_token(
    client: httpx.AsyncClient,
    resource: str | None = MCP,
    *,
    scopes: tuple[str, ...] = ("orders:read",),
    client_id: str | None = "oc_test",
    session_id: str = "oauth-session",
    **changes: Any,
) -> str:
    """An access token as the authorization server issues it for ``resource``."""
    app: AuthServiceApp = client.app  # type: ignore[attr-defined]
    assert app.runtime is not None
    token, _ = issue_access_token(
        app.runtime.keys,
        app.runtime.token_params,
        ALICE,
        session_id=session_id,
        scopes=scopes,
        resource=resource,
        client_id=client_id,
        **changes,
    )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the 401 names the metadata -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "challenge"),
    [
        (MCP, f'{REALM}, resource_metadata="{MCP_METADATA}"'),
        (MCP + "/tools/x?y=1", f'{REALM}, resource_metadata="{MCP_METADATA}"'),
        (MCP + "/admin/x", f'{REALM}, resource_metadata="{MCP_METADATA}", scope="orders:write"'),
        (OTHER, f'{REALM}, resource_metadata="{OTHER_METADATA}"'),
        ("https://MCP.example.com:443/mcp", f'{REALM}, resource_metadata="{MCP_METADATA}"'),
        # Not on a resource: today's challenge.
        ("https://mcp.example.com/mcpx", REALM),
        ("https://mcp.example.com/", REALM),
        ("http://mcp.example.com/mcp", REALM),
        ("https://mcp.example.com:8443/mcp", REALM),
        ("https://app.example.com/mcp", REALM),
    ],
)
async def test_a_401_on_a_resource_names_its_metadata(
    oauth: httpx.AsyncClient, url: str, challenge: str
) -> None:
    response = await oauth.get(VALIDATE, headers=on(url))
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == [challenge]
    assert response.json()["error"] == "missing_token"


async def test_a_bad_credential_gets_the_metadata_before_the_error(
    oauth: httpx.AsyncClient,
) -> None:
    response = await oauth.get(VALIDATE, headers=on(MCP + "/admin/x", **bearer("not.a.token")))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    # MCP clients take the first "name=" match: metadata and scope come first.
    assert challenge.startswith(
        f'{REALM}, resource_metadata="{MCP_METADATA}", scope="orders:write", error="invalid_token"'
        ', error_description="'
    )


async def test_without_a_trusted_proxys_word_no_metadata_is_named(
    oauth: httpx.AsyncClient,
) -> None:
    # No forwarded headers: we do not know where the request goes.
    response = await oauth.get(VALIDATE, headers={"Host": "mcp.example.com"})
    assert response.headers["www-authenticate"] == REALM


async def test_with_oauth_off_validate_answers_as_before(
    make_settings: Callable[..., Settings], config_file: Path
) -> None:
    settings = make_settings(
        public_url="https://auth.example.com", config=str(config_file), oauth_enabled=False
    )
    async for client in _started(settings):
        response = await client.get(VALIDATE, headers=on(MCP + "/admin/x"))
        assert response.headers.get_list("www-authenticate") == [REALM]
        token = oauth_token(client)
        refused = await client.get(VALIDATE, headers=on(MCP, **bearer(token)))
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
        assert refused.json()["error_description"] == "the token is meant for someone else (aud)"


# -- OAuth access tokens on their resource only ---------------------------------------------


async def test_an_oauth_token_works_on_its_resource_with_its_scopes(
    oauth: httpx.AsyncClient,
) -> None:
    token = oauth_token(oauth, scopes=("orders:read", "orders:write"))
    for url in (
        MCP,
        MCP + "/",
        MCP + "/tools/x?y=1",
        MCP + "/admin/x",
        "https://MCP.Example.com:443/mcp",
    ):
        response = await oauth.post(VALIDATE, headers=on(url, **bearer(token)))
        assert response.status_code == 200, (url, response.text)
        assert response.headers["x-auth-user"] == "alice"
        assert response.headers["x-auth-scopes"] == "orders:read orders:write"


@pytest.mark.parametrize(
    ("url", "metadata"),
    [
        (OTHER, OTHER_METADATA),  # another MCP server behind the same gate
        ("https://mcp.example.com/mcpx", None),  # not under /mcp
        ("https://mcp.example.com/other", None),
        ("http://mcp.example.com/mcp", None),  # another origin: the scheme
        ("https://mcp.example.com:8443/mcp", None),  # another origin: the port
        ("https://app.example.com/mcp", None),
    ],
)
async def test_an_oauth_token_is_refused_off_its_resource(
    oauth: httpx.AsyncClient, url: str, metadata: str | None
) -> None:
    token = oauth_token(oauth)
    response = await oauth.get(VALIDATE, headers=on(url, **bearer(token)))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "wrong_resource"
    named = f'resource_metadata="{metadata}", ' if metadata else ""
    assert response.headers["www-authenticate"] == (
        f'{REALM}, {named}error="invalid_token", '
        'error_description="the token was issued for another resource (aud)"'
    )


async def test_a_cached_oauth_token_is_checked_on_every_request(
    oauth: httpx.AsyncClient,
) -> None:
    """The token is verified once and cached; the cache must not carry it to another
    resource (the check is per request, not per token)."""
    token = oauth_token(oauth)
    first = await oauth.get(VALIDATE, headers=on(MCP, **bearer(token)))
    assert first.status_code == 200
    for url in (OTHER, "https://mcp.example.com/mcpx"):
        again = await oauth.get(VALIDATE, headers=on(url, **bearer(token)))
        assert again.status_code == 401, url
        assert again.json()["error"] == "wrong_resource"
    # No forwarded facts: the proxy did not say where the request goes; refused (fail closed).
    bare = await oauth.get(VALIDATE, headers=bearer(token))
    assert bare.status_code == 401
    assert bare.json()["error"] == "wrong_resource"
    assert (await oauth.get(VALIDATE, headers=on(MCP, **bearer(token)))).status_code == 200


async def test_an_anonymous_page_ignores_a_token_for_another_resource(
    oauth: httpx.AsyncClient, config_file: Path
) -> None:
    config_file.write_text(
        CONFIG + '\n[[rules]]\nid = "public"\npath = "/public/**"\nallow = "anonymous"\n'
    )
    app: AuthServiceApp = oauth.app  # type: ignore[attr-defined]
    assert app.runtime is not None and reload_config(app.runtime)
    token = oauth_token(oauth)
    response = await oauth.get(
        VALIDATE, headers=on("https://mcp.example.com/public/x", **bearer(token))
    )
    assert response.status_code == 200
    assert response.headers["x-auth-user"] == ""


@pytest.mark.parametrize(
    ("resource", "client_id", "description"),
    [
        ("https://unknown.example.com/mcp", "oc_test", "the token is meant for someone else (aud)"),
        ("https://mcp.example.com/mcp/", "oc_test", "the token is meant for someone else (aud)"),
        ("https://MCP.example.com/mcp", "oc_test", "the token is meant for someone else (aud)"),
        (MCP, "", "required claim missing or invalid: client_id"),
    ],
)
async def test_an_oauth_token_needs_a_configured_resource_and_a_client(
    oauth: httpx.AsyncClient, resource: str, client_id: str, description: str
) -> None:
    token = oauth_token(oauth, resource, client_id=client_id)
    response = await oauth.get(VALIDATE, headers=on(MCP, **bearer(token)))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.json()["error_description"] == description


async def test_a_session_cookie_token_cannot_name_a_resource(oauth: httpx.AsyncClient) -> None:
    token = oauth_token(oauth, session_cookie=True)
    app: AuthServiceApp = oauth.app  # type: ignore[attr-defined]
    assert app.runtime is not None
    cookie = f"{app.runtime.settings.session_cookie_name}={token}"
    response = await oauth.get(VALIDATE, headers=on(MCP, Cookie=cookie))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_a_resource_removed_by_a_reload_stops_its_tokens(
    oauth: httpx.AsyncClient, config_file: Path
) -> None:
    token = oauth_token(oauth, OTHER, scopes=("other",))
    assert (await oauth.get(VALIDATE, headers=on(OTHER, **bearer(token)))).status_code == 200
    config_file.write_text(CONFIG.partition('[[resources]]\nurl = "https://other')[0])
    app: AuthServiceApp = oauth.app  # type: ignore[attr-defined]
    assert app.runtime is not None and reload_config(app.runtime)
    response = await oauth.get(VALIDATE, headers=on(OTHER, **bearer(token)))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_our_login_tokens_keep_working_on_resources(
    oauth: httpx.AsyncClient, database_url: str
) -> None:
    await create_user(database_url, "bob", groups=("staff",))
    token = await login(oauth, "bob")
    for url in (MCP, OTHER, "https://app.example.com/x"):
        response = await oauth.get(VALIDATE, headers=on(url, **bearer(token)))
        assert response.status_code == 200, url
        assert response.headers["x-auth-user"] == "bob"


# -- 403: the scope a rule needs ------------------------------------------------------------


async def test_a_missing_scope_gets_the_step_up_challenge(oauth: httpx.AsyncClient) -> None:
    token = oauth_token(oauth, scopes=("orders:read",))
    response = await oauth.get(VALIDATE, headers=on(MCP + "/admin/x", **bearer(token)))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        f'{REALM}, error="insufficient_scope", scope="orders:write", '
        f'resource_metadata="{MCP_METADATA}"'
    )
    body = response.json()
    assert body["error"] == "insufficient_scope"
    assert body["rule"] == "orders-admin"
    assert "x-auth-error" not in response.headers  # Traefik's conventions


async def test_nginx_gets_the_refusal_code_of_a_403_in_a_header(oauth: httpx.AsyncClient) -> None:
    """nginx's auth_request passes no body on: its @forbidden answers from X-Auth-Error."""
    token = oauth_token(oauth, scopes=("orders:read",))
    scope = await oauth.get(VALIDATE, headers=on(MCP + "/admin/x", nginx=True, **bearer(token)))
    assert scope.status_code == 403
    assert scope.headers["x-auth-error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in scope.headers["www-authenticate"]
    denied = await oauth.get(VALIDATE, headers=on(MCP + "/closed/x", nginx=True, **bearer(token)))
    assert denied.status_code == 403
    assert denied.headers["x-auth-error"] == "rule_denied"
    assert "www-authenticate" not in denied.headers
    # A person's browser: a page, and no code for nginx to answer JSON with.
    page = await oauth.get(
        VALIDATE,
        headers=on(MCP + "/admin/x", nginx=True, **bearer(token), Accept="text/html"),
    )
    assert page.status_code == 403
    assert "x-auth-error" not in page.headers


async def test_a_missing_scope_off_a_resource_is_a_plain_rule_refusal(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # OAuth off: the rule's refusal is today's, without a challenge.
    (tmp_path / "rules.toml").write_text(CONFIG)
    settings = make_settings(config=str(tmp_path / "rules.toml"))
    assert not settings.oauth_active
    async for client in _started(settings):
        token = oauth_token(client, None, client_id=None, scopes=("orders:read",))
        response = await client.get(VALIDATE, headers=on(MCP + "/admin/x", **bearer(token)))
        assert response.status_code == 403
        assert response.json()["error"] == "rule_denied"
        assert "www-authenticate" not in response.headers


# -- no [[resources]]: every protected host is a resource at its origin ---------------------


async def test_without_resources_every_host_is_one_at_its_origin(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "rules.toml").write_text(CONFIG.partition("[[resources]]")[0])
    settings = make_settings(
        public_url="https://auth.example.com", config=str(tmp_path / "rules.toml")
    )
    async for client in _started(settings):
        root = "https://mcp.example.com/.well-known/oauth-protected-resource"
        response = await client.get(VALIDATE, headers=on(MCP + "/admin/x"))
        assert response.headers["www-authenticate"] == (
            f'{REALM}, resource_metadata="{root}", scope="orders:write"'
        )
        plain_http = await client.get(VALIDATE, headers=on("http://mcp.example.com/mcp"))
        assert plain_http.headers["www-authenticate"] == REALM  # not https, not loopback
        token = oauth_token(client, "https://mcp.example.com", scopes=())
        for url in (MCP, "https://mcp.example.com/anything"):
            assert (await client.get(VALIDATE, headers=on(url, **bearer(token)))).status_code == 200
        elsewhere = await client.get(VALIDATE, headers=on(OTHER, **bearer(token)))
        assert elsewhere.json()["error"] == "wrong_resource"
        narrow = oauth_token(client, MCP, scopes=())
        assert (await client.get(VALIDATE, headers=on(MCP, **bearer(narrow)))).status_code == 200
        wider = await client.get(
            VALIDATE, headers=on("https://mcp.example.com/x", **bearer(narrow))
        )
        assert wider.json()["error"] == "wrong_resource"
