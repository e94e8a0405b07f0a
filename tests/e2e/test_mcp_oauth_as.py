"""The ``mcp`` package's own OAuth client against our authorization server alone.

No gate here: the MCP server is a resource server of its own (``mcp_server.py --oauth-issuer``),
whose 401 names its protected-resource metadata, which names us. So the SDK discovers us,
registers, sends the person through our sign-in form and consent page (``FormLogin``),
exchanges the code, and calls the tool with our token, which the MCP server verifies with our
JWKS for its own URL. What the proxies add (validate's 401, the resource binding at the gate)
is tested through Traefik elsewhere.

The issuer is ``http://127.0.0.1:<port>`` (loopback http: allowed), with no ``[[resources]]``:
every such URL is a resource, its scopes those of the rules for its host.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from ..conftest import Served, create_user, free_port
from .oauth_login import FormLogin, MemoryStorage

SCOPE = "mcp:tools"
RULES = f'[[rules]]\nid = "mcp"\nhost = "127.0.0.1"\nscopes = ["{SCOPE}"]\n'


async def _call(url: str, provider: OAuthClientProvider, tool: str) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.call_tool(tool, {})
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content


def _token_requests(auth: Served) -> float:
    metrics = httpx.get(auth.url + "/metrics").text
    for line in metrics.splitlines():
        if line.startswith('auth_oauth_requests_total{endpoint="token",outcome="ok"}'):
            return float(line.split()[-1])
    raise AssertionError("no token counter")


async def test_the_sdk_discovers_registers_signs_in_and_calls_with_our_token(
    tmp_path: Path,
    database_url: str,
    serve: Callable[..., Served],
    mcp_server: Callable[..., int],
) -> None:
    await create_user(database_url, "alice")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = tmp_path / "auth.toml"
    config.write_text(RULES)
    auth = serve(
        port=port,
        AUTH_DATABASE_URL=database_url,
        AUTH_PUBLIC_URL=issuer,
        AUTH_COOKIE_SECURE="false",
        AUTH_CONFIG=str(config),
    )
    mcp_port = mcp_server(options=["--oauth-issuer", issuer, "--scope", SCOPE])
    url = f"http://127.0.0.1:{mcp_port}/mcp"
    login = FormLogin(issuer)
    storage = MemoryStorage()

    def provider() -> OAuthClientProvider:
        return OAuthClientProvider(
            url,
            OAuthClientMetadata(
                client_name="e2e",
                redirect_uris=[f"http://127.0.0.1:{free_port()}/callback"],
                grant_types=["authorization_code", "refresh_token"],
            ),
            storage,
            login.redirect_handler,
            login.callback_handler,
        )

    first = provider()
    seen = await _call(url, first, "token")
    assert seen == {
        "client_id": storage.client_info.client_id if storage.client_info else None,
        "scopes": [SCOPE],
        "resource": url,
        "username": "alice",
    }
    # The SDK asked for offline_access (we advertise it), so prompt=consent: the page, once.
    assert (login.redirects, login.consent_pages) == (1, 1)
    assert storage.tokens is not None and storage.tokens.refresh_token

    # A second client with the same storage reuses the token: no new authorization.
    await _call(url, provider(), "token")
    assert login.redirects == 1

    # The client's clock passes expires_in: the next call refreshes, still without the person.
    before = _token_requests(auth)
    old_refresh = storage.tokens.refresh_token
    first.context.token_expiry_time = 1.0  # 1970 (0 would read as "no expiry")
    await _call(url, first, "token")
    assert login.redirects == 1
    assert _token_requests(auth) == before + 1
    assert storage.tokens.refresh_token != old_refresh

    # Correlation: one flow id from /authorize to the first token, on every line between.
    lines = [json.loads(line) for line in auth.log_text().splitlines() if line.startswith("{")]
    flow_lines = {
        line["message"]: line.get("flow_id")
        for line in lines
        if line["message"]
        in ("oauth authorize", "login succeeded", "oauth code issued", "oauth consent granted")
    }
    first_token = next(line for line in lines if line["message"] == "oauth token issued")
    assert len(flow_lines) == 4
    assert set(flow_lines.values()) == {first_token["flow_id"]}
    # and no secret of the flow in any line.
    text = auth.log_text()
    code = parse_qs(urlsplit(login.location).query)["code"][0]
    for secret in (storage.tokens.access_token, storage.tokens.refresh_token, old_refresh, code):
        assert secret not in text

    # The token is for this server only: another MCP server (another origin) refuses it.
    other_port = mcp_server(options=["--oauth-issuer", issuer, "--scope", SCOPE])
    refused = httpx.post(
        f"http://127.0.0.1:{other_port}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": f"Bearer {storage.tokens.access_token}",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert refused.status_code == 401
