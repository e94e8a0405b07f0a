"""The ``mcp`` package's own client and server, through a real Traefik: the ground the OAuth
tests stand on (issue 15).

The client connects by URL, and ``*.localhost`` names do not resolve outside a browser, so the
routes here tell origins apart by the host names that do: ``127.0.0.1`` and ``localhost``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from ..conftest import PASSWORD, Served, create_user, free_port, stop_proxy
from .conftest import TraefikEdit, _start_traefik


@dataclass
class McpStack:
    """Traefik in front of an MCP server: ``plain_url`` without the auth middleware,
    ``gated_url`` behind it (the shipped ``auth`` middleware, asking ``auth``)."""

    port: int
    auth: Served

    @property
    def plain_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def gated_url(self) -> str:
        return f"http://localhost:{self.port}/mcp"


def _add_mcp_routes(mcp_port: int) -> TraefikEdit:
    """Two routers to the MCP server beside the shipped ones: one plain, one gated."""

    def edit(dynamic: dict[str, Any]) -> None:
        http = dynamic["http"]
        http["routers"]["mcp-plain"] = {
            "rule": "Host(`127.0.0.1`)",
            "entryPoints": ["web"],
            "service": "mcp",
        }
        http["routers"]["mcp-gated"] = {
            "rule": "Host(`localhost`)",
            "entryPoints": ["web"],
            "middlewares": ["auth"],
            "service": "mcp",
        }
        http["services"]["mcp"] = {
            "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{mcp_port}"}]}
        }

    return edit


@pytest.fixture
def mcp_stack(
    tmp_path: Path,
    database_url: str,
    serve: Callable[..., Served],
    mcp_server: Callable[..., int],
    echo_port: int,
) -> Iterator[McpStack]:
    port = free_port()
    auth = serve(AUTH_DATABASE_URL=database_url, AUTH_PUBLIC_URL=f"http://auth.localhost:{port}")
    proxy = _start_traefik(tmp_path, port, auth.port, echo_port, _add_mcp_routes(mcp_server()))
    try:
        stack = McpStack(port, auth)
        # Traefik loads its file provider in the background: wait until the MCP route exists.
        deadline = time.monotonic() + 20
        while httpx.get(stack.plain_url).status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.1)
        yield stack
    finally:
        stop_proxy(proxy)


async def whoami(url: str, **headers: str) -> dict[str, Any]:
    """Connect with the SDK's client, check the tool is listed, call it, return its answer."""
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        tools = await client.list_tools()
        assert [tool.name for tool in tools.tools] == ["whoami"]
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content


async def test_the_sdk_client_calls_the_tool_through_traefik(mcp_stack: McpStack) -> None:
    seen = await whoami(mcp_stack.plain_url, **{"X-Auth-User": "sent-by-the-client"})
    # No middleware on this route: the tool sees the request exactly as the client sent it.
    assert seen == {
        "x-auth-user": "sent-by-the-client",
        "x-auth-user-id": None,
        "x-auth-groups": None,
        "x-auth-scopes": None,
    }


async def test_behind_the_gate_the_tool_sees_the_identity_validate_gave(
    mcp_stack: McpStack, database_url: str
) -> None:
    await create_user(database_url, "alice", groups=("staff",))
    login = httpx.post(
        mcp_stack.auth.url + "/api/v1/auth/login",
        json={"username": "alice", "password": PASSWORD},
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    seen = await whoami(
        mcp_stack.gated_url, Authorization=f"Bearer {token}", **{"X-Auth-User": "mallory"}
    )
    assert seen["x-auth-user"] == "alice"
    assert seen["x-auth-groups"] == "staff"
    assert seen["x-auth-scopes"] == ""
