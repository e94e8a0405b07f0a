"""A real MCP server (the ``mcp`` package, streamable HTTP) for the end-to-end tests.

Its one tool, ``whoami``, answers with the identity headers the proxy put on the request, so a
test sees what the protected application would believe. Run as
``python mcp_server.py PORT [--path /mcp] [--allow-host HOST:PORT]...``: the SDK refuses a
``Host`` it does not know with 421 (its DNS-rebinding guard), and behind a proxy the ``Host`` is
the public one, so each test names the hosts it routes here.
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

IDENTITY_HEADERS = ("x-auth-user", "x-auth-user-id", "x-auth-groups", "x-auth-scopes")

server = MCPServer("auth-service e2e")


@server.tool()
async def whoami(ctx: Context) -> dict[str, str | None]:
    """The identity headers of the HTTP request that carried this call (None when absent)."""
    headers = ctx.headers or {}
    return {name: headers.get(name) for name in IDENTITY_HEADERS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/mcp")
    parser.add_argument("--allow-host", action="append", default=[])
    args = parser.parse_args()
    app = server.streamable_http_app(
        streamable_http_path=args.path,
        # One JSON answer per POST rather than an SSE stream: nothing for a proxy to buffer.
        json_response=True,
        transport_security=TransportSecuritySettings(allowed_hosts=args.allow_host),
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
