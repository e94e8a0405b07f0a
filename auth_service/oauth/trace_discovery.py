"""Discovery, as an MCP client does it: the 401, the resource's metadata, the server's.

The checks are the ones clients make and operators get wrong behind a proxy: the 401 must
name the metadata URL, the metadata's ``resource`` must have the scheme, host and port the
client called and a path that is a prefix of its path, and the issuer must be the same
string in both documents (clients compare byte for byte).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .trace_flow import (
    CLIENT_NAME,
    FlowState,
    StepFailed,
    error_of,
    json_object,
    parse_challenge,
)
from .urls import check_canonical, https_or_loopback

__all__ = ["INITIALIZE", "MCP_HEADERS", "probe", "resource_metadata", "server_metadata"]

# What an MCP client sends first (streamable HTTP, JSON-RPC initialize).
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": CLIENT_NAME, "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
_ROUTE_FIX = (
    "route /.well-known/oauth-protected-resource (and the path form) of this host to "
    "auth-service without the auth check, and make {url} a resource ([[resources]] url)"
)


async def probe(flow: FlowState, checks: list[str]) -> None:
    r = await flow.send("probe", "POST", flow.server_url, json=INITIALIZE, headers=MCP_HEADERS)
    if r.status_code != 401:
        raise StepFailed(
            f"{flow.server_url} answered {r.status_code} without a token, not 401",
            "put the URL behind auth-service (Traefik ForwardAuth, nginx auth_request or "
            "Caddy forward_auth), so that requests without a token get its 401",
        )
    checks.append("401")
    scheme, params = parse_challenge(r.headers.get("www-authenticate", ""))
    if scheme.lower() != "bearer":
        raise StepFailed("the 401 has no WWW-Authenticate: Bearer challenge", "see above")
    checks.append("WWW-Authenticate: Bearer")
    url = params.get("resource_metadata", "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        origin = urlsplit(flow.server_url)
        raise StepFailed(
            "the 401 names no absolute resource_metadata URL",
            _ROUTE_FIX.format(url=f"{origin.scheme}://{origin.netloc}{origin.path}"),
        )
    flow.resource_metadata_url = url
    checks.append("resource_metadata present")


async def resource_metadata(flow: FlowState, checks: list[str]) -> None:
    url = flow.resource_metadata_url
    fix = _ROUTE_FIX.format(url=flow.server_url)
    r = await flow.send("resource_metadata", "GET", url)
    if r.status_code != 200:
        raise StepFailed(f"{url} answered {r.status_code}{error_of(r)}, not 200", fix)
    doc = json_object(r, "the resource metadata", fix)
    checks.append("200 JSON")
    resource = doc.get("resource")
    if not isinstance(resource, str) or not _resource_covers(resource, flow.server_url):
        raise StepFailed(
            f"resource {resource!r} is not {flow.server_url} or a prefix of it on the same "
            "origin: clients refuse it",
            "the [[resources]] url must have the scheme, host and port clients use, and a "
            "path that is a prefix of the server's path (check X-Forwarded-Proto/-Host)",
        )
    checks.append("resource matches the URL")
    servers = doc.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        raise StepFailed("authorization_servers is missing or empty", "set AUTH_PUBLIC_URL")
    checks.append("authorization_servers")
    methods = doc.get("bearer_methods_supported", ["header"])
    if not isinstance(methods, list) or "header" not in methods:
        raise StepFailed("bearer_methods_supported lacks header", 'advertise ["header"]')
    scopes = doc.get("scopes_supported", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise StepFailed("scopes_supported is not a list of strings", "fix the resource scopes")
    if "offline_access" in scopes:
        raise StepFailed(
            "scopes_supported of the resource includes offline_access",
            "offline_access belongs in the authorization server's scopes only (MCP): remove it "
            "from the resource's scopes",
        )
    checks.append(f"scopes {' '.join(scopes)}" if scopes else "no scopes")
    flow.resource, flow.issuer, flow.scopes = resource, servers[0], scopes


def _resource_covers(resource: str, server_url: str) -> bool:
    """The MCP SDK's rule: same scheme and host:port (as strings), and a path prefix."""
    a, b = urlsplit(resource), urlsplit(server_url)
    if (a.scheme.lower(), a.netloc.lower()) != (b.scheme.lower(), b.netloc.lower()):
        return False
    prefix = a.path if a.path.endswith("/") else a.path + "/"
    path = b.path if b.path.endswith("/") else b.path + "/"
    return path.startswith(prefix)


def _well_known(issuer: str, name: str) -> str:
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}/.well-known/{name}{parts.path.rstrip('/')}"


async def server_metadata(flow: FlowState, checks: list[str]) -> None:
    issuer = flow.issuer
    url = _well_known(issuer, "oauth-authorization-server")
    route_fix = (
        f"route {url} to auth-service; without it the MCP SDK falls back to /authorize, "
        "/token and /register on the MCP server's own origin"
    )
    r = await flow.send("server_metadata", "GET", url)
    if r.status_code != 200:
        raise StepFailed(f"{url} answered {r.status_code}, not 200", route_fix)
    doc = json_object(r, "the authorization server metadata", route_fix)
    checks.append("200 JSON")
    if doc.get("issuer") != issuer:
        raise StepFailed(
            f"issuer {doc.get('issuer')!r} is not {issuer!r}, the resource metadata's "
            "authorization server: clients compare them byte for byte",
            "serve both documents from the same AUTH_PUBLIC_URL (or AUTH_ISSUER), spelled "
            "canonically, and route the resource metadata of every host to the same service",
        )
    problem = check_canonical(issuer, allow_path=True)
    if problem is not None:
        raise StepFailed(f"issuer {issuer}: {problem}", "set AUTH_PUBLIC_URL canonically")
    checks.append("issuer matches")
    _require(doc, "code_challenge_methods_supported", "S256", "PKCE S256")
    _require(doc, "response_types_supported", "code", "response type code")
    checks.append("S256, code")
    if doc.get("authorization_response_iss_parameter_supported") is True:
        checks.append("iss parameter")
    for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint"):
        if not isinstance(doc.get(name), str):
            fix = "set AUTH_OAUTH_REGISTRATION=open" if name == "registration_endpoint" else ""
            raise StepFailed(f"no {name} (trace-oauth registers a client)", fix or route_fix)
    for name, value in doc.items():
        if name.endswith("_endpoint") or name == "jwks_uri":
            if not isinstance(value, str) or not https_or_loopback(value):
                raise StepFailed(f"{name} {value!r} is not https", "serve the issuer over https")
    checks.append("endpoints https or loopback")
    other = await flow.send("server_metadata", "GET", _well_known(issuer, "openid-configuration"))
    if other.status_code == 200:
        try:
            same = other.json().get("issuer") == issuer
        except (ValueError, AttributeError):
            same = False
        if not same:
            raise StepFailed("openid-configuration names another issuer", route_fix)
        checks.append("openid-configuration agrees")
    flow.server = doc


def _require(doc: dict[str, Any], member: str, value: str, what: str) -> None:
    present = doc.get(member)
    if not isinstance(present, list) or value not in present:
        raise StepFailed(f"{member} lacks {value!r}", f"the server must support {what}")
