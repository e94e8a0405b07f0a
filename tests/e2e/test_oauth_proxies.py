"""The OAuth resource side through the shipped Traefik, nginx and Caddy files (issue 15): each
protected host's metadata reachable without a token, the challenges that point a client at it,
and what an attacker sends at the new ungated paths.

One auth-service (OAuth on: a loopback issuer) with a resource ``/mcp`` at each proxy's
origin, one echo upstream, and the three proxies in front of them, started once for the
module. Requests go out as raw bytes: nothing tidies a path on the client side.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from auth_service.key_encryption import load_key_ring
from auth_service.keys import load_key_set
from auth_service.runtime import token_parameters
from auth_service.settings import Settings
from auth_service.tokens import issue_access_token
from auth_service.types import User

from ..conftest import (
    PASSWORD,
    TEST_KEK,
    Served,
    cli_env,
    create_user,
    drop_database,
    free_port,
    new_database,
    start_served,
    stop_process,
)
from .conftest import Stack, _start_caddy, _start_nginx, _start_traefik, start_echo, wait_for_routes
from .test_attacks import Answer, send_raw

KINDS = ("traefik", "nginx", "caddy")
ISSUER = "http://auth.demo.localhost"
PRM = "/.well-known/oauth-protected-resource"
RULES = """
[[rules]]
id = "mcp-admin"
path = "/mcp/admin/**"
scopes = ["mcp:admin"]

[[rules]]
id = "public"
path = "/public/**"
allow = "anonymous"
"""
RESOURCE = """
[[resources]]
url = "http://app.demo.localhost:{port}/mcp"
name = "Demo MCP"
scopes = ["mcp", "mcp:admin"]
rules = ["mcp-admin"]
"""
ALICE = User("00000000-0000-0000-0000-0000000000a1", "alice", "", False, (), "", "")


@dataclass
class Proxied:
    """A proxy in front of the echo upstream, asking the module's auth-service."""

    kind: str
    port: int
    login_token: str

    @property
    def origin(self) -> str:
        return f"http://app.demo.localhost:{self.port}"

    def get(self, target: str, host: str | None = None, **headers: str) -> Answer:
        host = host or f"app.demo.localhost:{self.port}"
        return send_raw(self.port, f"GET {target} HTTP/1.1", host, **headers)


def reached_upstream(answer: Answer) -> bool:
    """Whether the echo upstream answered (it echoes the request as JSON)."""
    if answer.status != 200:
        return False
    try:
        return "headers" in answer.json()
    except ValueError:
        return False


async def _new_database(server_url: str) -> str:
    url = await new_database(server_url)
    await create_user(url, "alice")
    return url


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {kind: free_port() for kind in KINDS}


@pytest.fixture(scope="module")
def auth(
    server_url: str, tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("auth")
    database = asyncio.run(_new_database(server_url))
    config = RULES + "".join(RESOURCE.format(port=port) for port in ports.values())
    (folder / "auth.toml").write_text(config)
    env = cli_env(
        AUTH_DATABASE_URL=database,
        AUTH_CONFIG=str(folder / "auth.toml"),
        AUTH_PUBLIC_URL=ISSUER,
        AUTH_COOKIE_SECURE="false",
        AUTH_LOG_LEVEL="DEBUG",
    )
    served = start_served(folder, env)
    try:
        yield served
    finally:
        served.stop()
        asyncio.run(drop_database(server_url, database))


async def oauth_token(auth: Served, resource: str, scopes: tuple[str, ...] = ("mcp",)) -> str:
    """An access token as the authorization server issues it, signed with the service's key."""
    settings = Settings(
        database_url=auth.env["AUTH_DATABASE_URL"],
        public_url=ISSUER,
        key_encryption_key=TEST_KEK,  # type: ignore[arg-type]
    )
    conn = await asyncpg.connect(auth.env["AUTH_DATABASE_URL"])
    try:
        keys = await load_key_set(conn, load_key_ring(settings))
    finally:
        await conn.close()
    token, _ = issue_access_token(
        keys,
        token_parameters(settings),
        ALICE,
        session_id="e2e-oauth-session",
        scopes=scopes,
        resource=resource,
        client_id="oc_e2e",
    )
    return token


@pytest.fixture(scope="module")
def proxies(
    auth: Served, ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Proxied]]:
    folder = tmp_path_factory.mktemp("proxies")
    echo, echo_port = start_echo(folder)
    login = httpx.post(
        auth.url + "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    started = []
    try:
        found = {}
        for kind, start in (
            ("traefik", _start_traefik),
            ("nginx", _start_nginx),
            ("caddy", _start_caddy),
        ):
            (folder / kind).mkdir()
            started.append(start(folder / kind, ports[kind], auth.port, echo_port))
            wait_for_routes(Stack(kind, ports[kind], auth))
            found[kind] = Proxied(kind, ports[kind], login.json()["access_token"])
        yield found
    finally:
        for process in started:
            stop_process(process)
        stop_process(echo)


@pytest.fixture(params=KINDS)
def proxy(request: pytest.FixtureRequest, proxies: dict[str, Proxied]) -> Proxied:
    return proxies[request.param]


def challenge_of(answer: Answer) -> dict[str, str]:
    """The attributes of the one Bearer challenge, by name."""
    (value,) = answer.headers["www-authenticate"]
    assert value.startswith("Bearer "), value
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


# -- discovery ------------------------------------------------------------------------------


def test_the_401_points_at_metadata_that_describes_the_server_called(proxy: Proxied) -> None:
    """What an MCP client does first: call, read resource_metadata, fetch it (no token),
    check that its resource is the server it called (same origin, path prefix)."""
    called = proxy.origin + "/mcp"
    refused = proxy.get("/mcp", Accept="application/json, text/event-stream")
    assert refused.status == 401, refused
    assert refused.json()["error"] == "missing_token"
    challenge = challenge_of(refused)
    assert challenge == {"realm": "auth-service", "resource_metadata": proxy.origin + PRM + "/mcp"}
    document = proxy.get(challenge["resource_metadata"].removeprefix(proxy.origin))
    assert document.status == 200, document
    assert document.json() == {
        "resource": called,
        "authorization_servers": [ISSUER],
        "scopes_supported": ["mcp", "mcp:admin"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Demo MCP",
    }
    admin = proxy.get("/mcp/admin/tools", Accept="application/json")
    assert challenge_of(admin)["scope"] == "mcp:admin"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        {"X-Forwarded-Host": "127.0.0.1:1", "X-Original-URI": "/x", "X-Forwarded-Uri": "/x"},
        {"Forwarded": "host=evil.example;proto=https"},
    ],
)
def test_a_client_cannot_make_the_document_name_another_server(
    proxy: Proxied, headers: dict[str, str]
) -> None:
    document = proxy.get(PRM + "/mcp", **headers)
    assert document.status == 200, document
    assert document.json()["resource"] == proxy.origin + "/mcp"


def test_the_host_is_named_in_its_canonical_spelling(proxy: Proxied) -> None:
    document = proxy.get(PRM + "/mcp", host=f"APP.Demo.LocalHost:{proxy.port}")
    assert document.status == 200, document
    assert document.json()["resource"] == proxy.origin + "/mcp"


def test_the_root_form_is_answered_by_us_not_the_upstream(proxy: Proxied) -> None:
    # The resource is /mcp: nothing at the origin's root (RFC 9728 §3.3), and a 404, never a
    # 5xx, so that a client tries the next URL.
    root = proxy.get(PRM)
    assert root.status == 404, root
    assert root.json()["error"] == "not_found"


# -- attacks on the ungated paths ----------------------------------------------------------

SPELLINGS = [
    PRM + "/..%2f..%2fmetrics",
    PRM + "/%2e%2e/%2e%2e/metrics",
    PRM + "/../../metrics",
    PRM + "/../../mcp",
    PRM + "/mcp/../../../mcp/admin/x",
    PRM + "//mcp",
    PRM + "/..\\..\\metrics",
    PRM + "/..;/..;/mcp",
    PRM + "/mcp%2f..%2f..%2f..%2fmcp",
    PRM + "/%2e%2e%2f%2e%2e%2fapi/v1/auth/validate",
    PRM + "%2fmcp",
    PRM + "X",
    PRM + ".json",
    PRM + "X/mcp",
    "/mcp/.." + PRM + "/mcp",
]


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_spelling_of_the_metadata_path_reaches_anything_ungated(
    proxy: Proxied, path: str
) -> None:
    """Each one is refused by the proxy, by validate (gated: 400 or 401), or by the metadata
    handler (400, 404); never the upstream without a credential, never another route of ours.
    Traefik cleans "//" and "/x/.." itself: what it forwards, and what we describe, is then
    the canonical metadata path (a public document)."""
    answer = proxy.get(path, Accept="application/json")
    assert not reached_upstream(answer), (path, answer)
    assert b"auth_validate" not in answer.body and b"# HELP" not in answer.body
    if answer.status == 200:
        assert proxy.kind == "traefik", (path, answer)
        assert answer.json()["resource"] == proxy.origin + "/mcp"
        return
    assert answer.status in (400, 401, 404), (path, answer)
    if answer.body.startswith(b"{"):  # else the proxy's own refusal
        assert answer.json()["error"] in ("invalid_request", "not_found", "missing_token"), path


@pytest.mark.parametrize("path", [PRM + "X", PRM + ".json", PRM + "X/mcp"])
def test_look_alike_paths_are_behind_the_gate(proxy: Proxied, path: str) -> None:
    refused = proxy.get(path, Accept="application/json")
    assert refused.status == 401, refused
    passed = proxy.get(path, Authorization=f"Bearer {proxy.login_token}")
    assert reached_upstream(passed), passed
    assert passed.json()["path"] == path


# -- tokens and scopes ----------------------------------------------------------------------


def test_a_missing_scope_gets_the_step_up_challenge(proxy: Proxied) -> None:
    """nginx drops WWW-Authenticate from a 403 unless its @forbidden puts it back."""
    answer = proxy.get(
        "/mcp/admin/tools",
        Accept="application/json",
        Authorization=f"Bearer {proxy.login_token}",
    )
    assert answer.status == 403, answer
    assert challenge_of(answer) == {
        "realm": "auth-service",
        "error": "insufficient_scope",
        "scope": "mcp:admin",
        "resource_metadata": proxy.origin + PRM + "/mcp",
    }
    assert answer.header("content-type") == "application/json"
    body = answer.json()
    assert body["error"] == "insufficient_scope"
    assert body["request_id"] == answer.header("x-request-id")


def test_an_oauth_token_reaches_the_upstream_on_its_resource_only(
    proxy: Proxied, auth: Served, proxies: dict[str, Proxied]
) -> None:
    token = asyncio.run(oauth_token(auth, proxy.origin + "/mcp"))
    bearer = f"Bearer {token}"
    allowed = proxy.get("/mcp/tools?x=1", Authorization=bearer)
    assert reached_upstream(allowed), allowed
    seen = {name.lower(): value for name, value in allowed.json()["headers"]}
    assert (seen["x-auth-user"], seen["x-auth-scopes"]) == ("alice", "mcp")
    for path in ("/mcpx", "/other", "/"):
        refused = proxy.get(path, Accept="application/json", Authorization=bearer)
        assert refused.status == 401, (path, refused)
        assert refused.json()["error"] == "wrong_resource"
    # The same path on another origin (another proxy's port): another resource.
    other = next(p for p in proxies.values() if p.port != proxy.port)
    elsewhere = other.get("/mcp", Accept="application/json", Authorization=bearer)
    assert elsewhere.status == 401, elsewhere
    assert elsewhere.json()["error"] == "wrong_resource"
    assert challenge_of(elsewhere)["resource_metadata"] == other.origin + PRM + "/mcp"
    # Out of /mcp through a dot segment: refused as sent (400), or cleaned by the proxy
    # (Traefik) into a path that is not on the resource.
    dotted = proxy.get("/mcp/../admin", Accept="application/json", Authorization=bearer)
    assert dotted.status in (400, 401), dotted
    assert not reached_upstream(dotted)
    assert json.loads(dotted.body)["error"] in ("invalid_request", "wrong_resource")
