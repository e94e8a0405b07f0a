"""The ``mcp`` package's own OAuth client logs in by itself, through a real Traefik in front of a
real MCP server (issue 15, "Done when"): it discovers us from the 401, registers, signs in
through our form (``FormLogin`` plays the person), calls a tool that sees ``X-Auth-User``,
reuses its token, refreshes it, and its token is refused by a second MCP server on another
origin.

Traefik runs the shipped ``traefik/dynamic.yml`` and ``traefik/mcp.yml`` (the README's
example), with host names the SDK can reach (it connects by URL, and ``*.localhost`` does not
resolve outside a browser): the MCP server A at ``127.0.0.1:P``, B at ``127.0.0.1:Q`` (a
second entry point: another origin), and the authorization server either on A's origin
(``one_origin``) or at ``localhost:P`` (``split_origins``). One stack per layout, shared by
the module's tests; each test registers a client and logs in afresh.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from ..conftest import (
    Served,
    cli_env,
    create_user,
    drop_database,
    free_port,
    new_database,
    start_served,
    stop_process,
)
from .conftest import REPO, _start_traefik, _wait_for_port, start_echo
from .oauth_login import FormLogin, MemoryStorage

PRM = "/.well-known/oauth-protected-resource"
LAYOUTS = ("one_origin", "split_origins")


@dataclass
class McpStack:
    """Traefik in front of MCP servers A and B, and auth-service, in one layout."""

    layout: str
    issuer: str
    a: str  # the MCP endpoint URLs
    b: str
    auth: Served


def start_mcp_server(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``mcp_server.py`` on a free port (it accepts the Host values 127.0.0.1:* and
    localhost:*, which are the ones Traefik passes on here)."""
    port = free_port()
    log = folder / f"mcp-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("mcp_server.py")),
                str(port),
                "--allow-host=127.0.0.1:*",
                "--allow-host=localhost:*",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_for_port(port, process, "the MCP server", log)
    return process, port


def shipped_mcp_routes() -> dict[str, Any]:
    """``traefik/mcp.yml``, the README's example."""
    loaded: dict[str, Any] = yaml.safe_load((REPO / "traefik" / "mcp.yml").read_text())
    return loaded


def _layout(layout: str, port: int, port_b: int, mcp_a: int, mcp_b: int) -> tuple[str, Any, Any]:
    """The issuer, and the edits of the shipped Traefik files for ``layout``."""
    issuer_host = "127.0.0.1" if layout == "one_origin" else "localhost"
    issuer = f"http://{issuer_host}:{port}"

    def edit(dynamic: dict[str, Any]) -> None:
        http = dynamic["http"]
        # The login host (and, on one origin, the MCP host): auth-service's own paths.
        auth = http["routers"]["auth"]
        auth["rule"] = auth["rule"].replace("auth.demo.localhost", issuer_host)
        mcp = shipped_mcp_routes()["http"]
        for suffix, entry_point, mcp_port in (("", "web", mcp_a), ("-b", "web-b", mcp_b)):
            for name, router in mcp["routers"].items():
                router = dict(router)
                router["rule"] = router["rule"].replace("mcp.example.com", "127.0.0.1")
                router["entryPoints"] = [entry_point]
                if router["service"] == "mcp":
                    router["service"] = "mcp" + suffix
                http["routers"][name + suffix] = router
            http["services"]["mcp" + suffix] = {
                "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{mcp_port}"}]}
            }

    def adjust(dynamic: dict[str, Any], static: dict[str, Any]) -> None:
        static["entryPoints"]["web-b"] = {
            **static["entryPoints"]["web"],
            "address": f"127.0.0.1:{port_b}",
        }

    return issuer, edit, adjust


async def _new_database(server_url: str) -> str:
    url = await new_database(server_url)
    await create_user(url, "alice", groups=("staff",))
    return url


@pytest.fixture(scope="module", params=LAYOUTS)
def mcp_stack(
    request: pytest.FixtureRequest, server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[McpStack]:
    folder = tmp_path_factory.mktemp(request.param)
    port, port_b = free_port(), free_port()
    database = asyncio.run(_new_database(server_url))
    processes: list[subprocess.Popen[bytes]] = []
    auth = None
    try:
        server_a, mcp_a = start_mcp_server(folder)
        server_b, mcp_b = start_mcp_server(folder)
        echo, echo_port = start_echo(folder)
        processes += [server_a, server_b, echo]
        issuer, edit, adjust = _layout(request.param, port, port_b, mcp_a, mcp_b)
        a, b = f"http://127.0.0.1:{port}/mcp", f"http://127.0.0.1:{port_b}/mcp"
        (folder / "auth.toml").write_text(
            f'[[resources]]\nurl = "{a}"\nname = "MCP A"\nscopes = ["mcp"]\n\n'
            f'[[resources]]\nurl = "{b}"\nname = "MCP B"\nscopes = ["mcp"]\n'
        )
        env = cli_env(
            AUTH_DATABASE_URL=database,
            AUTH_CONFIG=str(folder / "auth.toml"),
            AUTH_PUBLIC_URL=issuer,
            AUTH_COOKIE_SECURE="false",
            AUTH_TRUSTED_PROXIES="127.0.0.1/32",
        )
        auth = start_served(folder, env)
        processes.append(_start_traefik(folder, port, auth.port, echo_port, edit, adjust))
        stack = McpStack(request.param, issuer, a, b, auth)
        _wait_for_routes(stack)
        yield stack
    finally:
        for process in reversed(processes):
            stop_process(process)
        if auth is not None:
            auth.stop()
        asyncio.run(drop_database(server_url, database))


def _wait_for_routes(stack: McpStack) -> None:
    """Traefik loads its file provider in the background: wait for both MCP routes."""
    for _ in range(200):
        answers = [httpx.post(url, json={}).status_code for url in (stack.a, stack.b)]
        metadata = httpx.get(stack.issuer + "/.well-known/oauth-authorization-server")
        if answers == [401, 401] and metadata.status_code == 200:
            return
        asyncio.run(asyncio.sleep(0.1))
    raise AssertionError(f"Traefik did not route: {answers}, {metadata.status_code}")


def provider_for(url: str, storage: MemoryStorage, login: FormLogin) -> OAuthClientProvider:
    return OAuthClientProvider(
        url,
        OAuthClientMetadata(
            client_name="e2e",
            redirect_uris=[f"http://127.0.0.1:{free_port()}/callback"],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
        ),
        storage,
        login.redirect_handler,
        login.callback_handler,
    )


async def whoami(url: str, provider: OAuthClientProvider) -> dict[str, Any]:
    """Connect with the SDK's client (which logs in when it must) and call the tool."""
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content


async def test_the_sdk_logs_in_by_itself_reuses_and_refreshes_its_token(
    mcp_stack: McpStack,
) -> None:
    storage, login = MemoryStorage(), FormLogin(mcp_stack.issuer)
    provider = provider_for(mcp_stack.a, storage, login)
    seen = await whoami(mcp_stack.a, provider)
    assert seen["x-auth-user"] == "alice"
    assert seen["x-auth-groups"] == "staff"
    assert seen["x-auth-scopes"] == "mcp"
    assert login.redirects == 1
    # It registered (RFC 7591), and the person saw who asks, for what, and where it goes back.
    assert storage.client_info is not None and storage.client_info.client_id
    assert login.consent_pages == 1
    first = storage.tokens
    assert first is not None and first.refresh_token

    # A second connection (another Client, the same provider): the token is reused.
    again = await whoami(mcp_stack.a, provider)
    assert again["x-auth-user"] == "alice"
    assert login.redirects == 1
    assert storage.tokens is first

    # The client's clock says the token expired: it refreshes, without the person.
    provider.context.token_expiry_time = 1.0  # 1970 (0 would read as "no expiry")
    refreshed = await whoami(mcp_stack.a, provider)
    assert refreshed["x-auth-user"] == "alice"
    assert login.redirects == 1
    assert storage.tokens is not None
    assert storage.tokens.access_token != first.access_token
    assert storage.tokens.refresh_token not in (None, first.refresh_token)  # rotated


async def test_its_token_is_refused_by_another_mcp_server(mcp_stack: McpStack) -> None:
    storage, login = MemoryStorage(), FormLogin(mcp_stack.issuer)
    await whoami(mcp_stack.a, provider_for(mcp_stack.a, storage, login))
    assert storage.tokens is not None
    # Token passthrough (MCP): A's token sent to B, on another origin, is not accepted.
    answer = httpx.post(
        mcp_stack.b,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": f"Bearer {storage.tokens.access_token}",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "wrong_resource"
    challenge = answer.headers["www-authenticate"]
    origin_b = mcp_stack.b.removesuffix("/mcp")
    assert re.search(r'resource_metadata="([^"]+)"', challenge).group(1) == (  # type: ignore[union-attr]
        origin_b + PRM + "/mcp"
    )
    # B itself is reachable to a client that logs in for it: its own consent, its own token.
    login_b = FormLogin(mcp_stack.issuer)
    seen = await whoami(mcp_stack.b, provider_for(mcp_stack.b, MemoryStorage(), login_b))
    assert seen["x-auth-user"] == "alice"
    assert login_b.consent_pages == 1
