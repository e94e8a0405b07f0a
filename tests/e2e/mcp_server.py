"""A real MCP server (the ``mcp`` package, streamable HTTP) for the end-to-end tests.

Its one tool, ``whoami``, answers with the identity headers the proxy put on the request, so a
test sees what the protected application would believe. Run as
``python mcp_server.py PORT [--path /mcp] [--allow-host HOST:PORT]...``: the SDK refuses a
``Host`` it does not know with 421 (its DNS-rebinding guard), and behind a proxy the ``Host`` is
the public one, so each test names the hosts it routes here.

With ``--oauth-issuer URL --scope S...`` it is instead a resource server of its own, as an MCP
server that checks tokens itself would be (no gate in front): its 401 names its protected-resource
metadata, which names our issuer, and it verifies our access tokens with our JWKS, for its own
URL as audience. Its second tool, ``token``, says what it verified. The authorization-server
tests use it to run the SDK's OAuth client against auth-service alone.
"""

from __future__ import annotations

import argparse
from typing import Any

import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

IDENTITY_HEADERS = ("x-auth-user", "x-auth-user-id", "x-auth-groups", "x-auth-scopes")


async def whoami(ctx: Context) -> dict[str, str | None]:
    """The identity headers of the HTTP request that carried this call (None when absent)."""
    headers = ctx.headers or {}
    return {name: headers.get(name) for name in IDENTITY_HEADERS}


async def token() -> dict[str, Any]:
    """What the verified access token of this call said."""
    access = get_access_token()
    assert access is not None and access.claims is not None
    return {
        "client_id": access.client_id,
        "scopes": access.scopes,
        "resource": access.resource,
        "username": access.claims.get("preferred_username"),
    }


class JwksVerifier:
    """Our ES256 access tokens, checked with the issuer's JWKS: signature, issuer, audience."""

    def __init__(self, issuer: str, resource: str) -> None:
        self.issuer = issuer
        self.resource = resource
        self.keys = jwt.PyJWKClient(issuer + "/.well-known/jwks.json")

    async def verify_token(self, value: str) -> AccessToken | None:
        try:
            key = self.keys.get_signing_key_from_jwt(value)
            claims = jwt.decode(
                value, key, algorithms=["ES256"], audience=self.resource, issuer=self.issuer
            )
        except jwt.PyJWTError:
            return None
        return AccessToken(
            token=value,
            client_id=claims["client_id"],
            scopes=claims.get("scope", "").split(),
            expires_at=claims["exp"],
            resource=claims["aud"],
            subject=claims["sub"],
            claims=claims,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/mcp")
    parser.add_argument("--allow-host", action="append", default=[])
    parser.add_argument("--oauth-issuer")
    parser.add_argument("--scope", action="append", default=[])
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.oauth_issuer:
        resource = f"http://127.0.0.1:{args.port}{args.path}"
        options["auth"] = AuthSettings(
            issuer_url=args.oauth_issuer,
            resource_server_url=resource,
            required_scopes=args.scope,
            validate_token_resource=True,
        )
        options["token_verifier"] = JwksVerifier(args.oauth_issuer, resource)
    server = MCPServer("auth-service e2e", **options)
    server.tool()(whoami)
    if args.oauth_issuer:
        server.tool()(token)
    app = server.streamable_http_app(
        streamable_http_path=args.path,
        # One JSON answer per POST rather than an SSE stream: nothing for a proxy to buffer.
        json_response=True,
        transport_security=TransportSecuritySettings(allowed_hosts=args.allow_host),
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
